"""The bench's minimal webhook receiver: its own process, uvloop, a raw asyncio.Protocol.

It answers every HTTP/1.1 request with ``200 OK`` and an empty body on a
keep-alive connection, and for each request records the arrival time
(``time.monotonic_ns()``, comparable across processes on Linux) and the
``X-WFM-Event-Id`` header. Requests are parsed without pipelining support
beyond what falls out naturally: a request is a header block ended by a blank
line plus ``Content-Length`` body bytes, which may arrive in later chunks.

Control: the parent writes one command per line on stdin and reads one JSON
line per command on stdout:

* ``count`` → ``{"count": n}``;
* ``dump`` → ``{"count", "times", "ids", "cpu_seconds"}`` (ids as text);
* ``reset`` → ``{"ok": true}`` (forgets everything recorded).

Start: ``python -m stream_wfm.bench.receiver``; the first stdout line is
``{"port": PORT}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from typing import IO, Any, cast

import orjson

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_EVENT_ID = b"\r\nx-wfm-event-id:"
_CONTENT_LENGTH = b"\r\ncontent-length:"


class Recorder:
    """What the receiver saw."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.ids: list[bytes] = []

    def reset(self) -> None:
        self.times = []
        self.ids = []


class _Http(asyncio.Protocol):
    __slots__ = ("_buf", "_need", "_rec", "_transport")

    def __init__(self, recorder: Recorder) -> None:
        self._rec = recorder
        self._buf = b""
        self._need = 0  # body bytes still to skip
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        need = self._need
        pos = 0
        answered = 0
        size = len(buf)
        while True:
            if need:
                take = min(need, size - pos)
                pos += take
                need -= take
                if need:
                    break
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = buf[pos:end].lower()
            original = buf[pos:end]
            pos = end + 4
            now = time.monotonic_ns()
            length = 0
            i = head.find(_CONTENT_LENGTH)
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + len(_CONTENT_LENGTH) : j if j >= 0 else None])
            i = head.find(_EVENT_ID)
            event_id = b""
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                event_id = original[i + len(_EVENT_ID) : j if j >= 0 else None].strip()
            rec = self._rec
            rec.times.append(now)
            rec.ids.append(event_id)
            answered += 1
            need = length
        self._need = need
        self._buf = buf[pos:] if pos < size else b""
        if answered and self._transport is not None:
            self._transport.write(RESPONSE * answered)


async def _control(recorder: Recorder) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while True:
        line = (await reader.readline()).strip()
        if not line:
            return  # parent closed stdin: stop
        reply: dict[str, Any]
        if line == b"count":
            reply = {"count": len(recorder.times)}
        elif line == b"dump":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            reply = {
                "count": len(recorder.times),
                "times": recorder.times,
                "ids": [i.decode("ascii", "replace") for i in recorder.ids],
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }
        elif line == b"reset":
            recorder.reset()
            reply = {"ok": True}
        else:
            reply = {"error": f"unknown command {line!r}"}
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()


async def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(recorder), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.buffer.write(orjson.dumps({"port": bound}) + b"\n")
    sys.stdout.buffer.flush()
    async with server:
        await _control(recorder)


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


class ReceiverProcess:
    """The parent's handle on a receiver process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stream_wfm.bench.receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        first = self._read()
        self.port = int(first["port"])
        self.pid = self._proc.pid

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _read(self) -> dict[str, Any]:
        stdout: IO[bytes] | None = self._proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError("the bench receiver exited")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    def _ask(self, command: str) -> dict[str, Any]:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(command.encode() + b"\n")
        stdin.flush()
        return self._read()

    def count(self) -> int:
        return int(self._ask("count")["count"])

    def dump(self) -> dict[str, Any]:
        return self._ask("dump")

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    # Unbuffered replies: the parent waits for each line.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
