"""``stream-wfm run`` as a measured subprocess.

The bench starts the real service (``python -m stream_wfm run``) with
``STREAM_WFM_*`` variables only (none inherited from the caller's
environment, and no ``.env``: it runs in an empty directory), polls
``/readyz`` for readiness and reads its CPU time (user + system, all threads)
from ``/proc/<pid>/stat`` and its resident memory from ``/proc/<pid>/status``.
It can also stop it with SIGTERM or ``kill -9`` and read its output.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a ``/proc`` ``stat`` file (process or thread)."""
    raw = stat.read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread), from /proc."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU seconds of each thread of process ``pid`` (``"tid name"``)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            out[f"{task.name} {name}"] = _stat_cpu_seconds(task / "stat")
        except OSError:
            continue  # the thread ended meanwhile
    return out


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → metric name (labels dropped) → sum of its samples."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = line.find("{")
        space = line.rfind(" ")
        name = line[:name_end] if 0 <= name_end < space else line[:space]
        try:
            value = float(line[space + 1 :])
        except ValueError:
            continue
        sums[name] = sums.get(name, 0.0) + value
    return sums


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One ``stream-wfm run`` process, configured by ``env`` (``STREAM_WFM_*``) only.

    It runs in an empty temporary directory, which also holds its output (stdout and
    stderr, :meth:`logs`); :meth:`close` (or leaving the ``with`` block) stops it and
    removes the directory. ``port`` (default: a free one) is its HTTP port.
    """

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        base = {k: v for k, v in os.environ.items() if not k.upper().startswith("STREAM_WFM_")}
        self._env = {**base, **env, "STREAM_WFM_HTTP_PORT": str(self.port)}
        self._env.setdefault("STREAM_WFM_HTTP_HOST", "127.0.0.1")
        self._dir = tempfile.TemporaryDirectory(prefix="stream-wfm-run-")
        self.log_path = Path(self._dir.name) / "service.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_seconds = 0.0

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> Self:
        with self.log_path.open("wb") as log:
            self.started_at = time.monotonic()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "stream_wfm", "run"],
                env=self._env,
                cwd=self._dir.name,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def poll(self) -> int | None:
        """The exit code, or ``None`` while the process runs."""
        assert self._proc is not None
        return self._proc.poll()

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """``(status, body)`` of ``GET path`` on the service's HTTP port; ``(0, reason)``
        when it does not answer."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read()).decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def is_ready(self) -> bool:
        """Whether ``/readyz`` answers ``200`` now; :class:`RuntimeError` once the process
        has exited. The first ``200`` sets :attr:`ready_seconds` (since :meth:`start`)."""
        if self.poll() is not None:
            raise RuntimeError(f"the service exited early:\n{self.log_tail()}")
        if self.get("/readyz", 1.0)[0] != 200:
            return False
        if not self.ready_seconds:
            self.ready_seconds = time.monotonic() - self.started_at
        return True

    def block_until_ready(self, timeout: float = 60.0) -> float:
        """Wait (blocking) for readiness; seconds from process start to the first ``200``
        from ``/readyz``."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the service was not ready within {timeout:g}s:\n{self.log_tail()}"
                )
            time.sleep(0.01)  # polling readiness with a deadline
        return self.ready_seconds

    def metrics(self) -> dict[str, float]:
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return parse_metrics(body)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def logs(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM (the service drains and commits), without waiting."""
        if self.poll() is None:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)

    def kill9(self) -> None:
        """``kill -9``, and wait for the exit."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait for the exit; SIGKILL after ``timeout`` seconds."""
        if self._proc is None:
            return
        self.terminate()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def close(self) -> None:
        """:meth:`stop`, then remove the directory (and the output)."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CpuSampler:
    """Samples a process's CPU seconds every ``interval`` on a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self._pid = pid
        self._interval = interval
        self.samples: list[tuple[int, float]] = []  # (monotonic_ns, cpu seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic_ns(), cpu_seconds(self._pid)))
            except (OSError, IndexError, ValueError):
                return
            if self._stop.wait(self._interval):
                return

    def at(self, t_ns: int) -> float:
        """CPU seconds at ``t_ns``, interpolated between samples."""
        return interpolate(self.samples, t_ns)


def interpolate(samples: list[tuple[int, float]], t_ns: int) -> float:
    """The value at ``t_ns`` of a series of ``(t_ns, value)`` samples (linear)."""
    if not samples:
        return 0.0
    if t_ns <= samples[0][0]:
        return samples[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= t_ns <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t_ns - t0) / (t1 - t0)
    return samples[-1][1]


def crossing(samples: list[tuple[int, float]], value: float) -> int | None:
    """The time (ns) a non-decreasing series first reaches ``value`` (linear)."""
    prev: tuple[int, float] | None = None
    for t, v in samples:
        if v >= value:
            if prev is None or v == prev[1]:
                return t
            t0, v0 = prev
            return int(t0 + (t - t0) * (value - v0) / (v - v0))
        prev = (t, v)
    return None
