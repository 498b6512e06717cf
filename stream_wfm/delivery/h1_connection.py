"""h1's connections: one keep-alive HTTP/1.1 connection per request at a time, its
response parsed by llhttp (``httptools``) as the bytes come, and the per-host pool.

An exchange is completed by the connection itself, in its protocol callbacks: the
response (or the failure) gives the request's :class:`Outcome`, the connection goes back
to its pool (or is closed), then the future :meth:`Connection.start` returned gets the
outcome. No coroutine per request.

Used by :class:`~stream_wfm.delivery.h1_transport.H1Transport`, whose docstring states
the contract (limits, reuse, what counts as a connection error).
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from aiohappyeyeballs import AddrInfoType
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    DeliveryTimeoutError,
    IncompleteResponseError,
    NoResponseError,
    ProtocolError,
)
from stream_wfm.delivery.h1_wire import RequestLines, host_header
from stream_wfm.delivery.outcome import Outcome, classify_status, outcome_for_error
from stream_wfm.hostnames import ascii_host

__all__ = ["DRAIN_LIMIT", "IDLE_TIMEOUT_SECONDS", "MAX_HEAD_BYTES", "Connection", "HostPool"]

#: Response bodies are read up to this size; a larger one closes the connection.
DRAIN_LIMIT: Final = 64 * 1024
#: A response whose status line and headers are larger than this is a protocol error.
MAX_HEAD_BYTES: Final = 64 * 1024
#: Idle keep-alive connections are closed after this long (aiohttp's default too).
IDLE_TIMEOUT_SECONDS: Final = 15.0

_HEAD_TOO_LARGE: Final = f"response head larger than {MAX_HEAD_BYTES} bytes"


def no_response(exc: BaseException, timeout: float) -> NoResponseError:
    """What a failed exchange means: a ``TimeoutError`` is the request's ``timeout``; a
    :class:`NoResponseError` (raised here) is itself; anything else, a connection failure."""
    if isinstance(exc, TimeoutError):
        return DeliveryTimeoutError(timeout)
    if isinstance(exc, NoResponseError):
        return exc
    return ConnectionFailedError(cause=exc)


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, the response parsed as it comes."""

    def __init__(
        self, pool: HostPool, sock: socket.socket, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.pool = pool
        self.loop = loop
        self.generation = pool.generation
        self.sock = sock  # the transport's own socket: polled, never read
        # Whether the socket is readable, by a poll that never blocks: cheaper than a
        # peeking recv(), whose "nothing there" is an exception (with its message).
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        # The current exchange.
        self.waiter: asyncio.Future[Outcome] | None = None
        self.deadline = 0.0  # loop time; checked by the transport's deadline ticker
        self.timeout = 0.0  # the request's, for the outcome of a timeout
        self.preview_out: list[bytes] | None = None
        self.status = 0
        self.retry_after: str | None = None
        self.framed = False  # Content-Length or chunked: the end is not the connection's
        self.reusable = False
        self.body_size = 0
        self.received = 0  # bytes of this response so far (head, body, chunk framing)
        self.head_size = 0  # header names and values so far
        self.preview = b""
        self.preview_limit = 0

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self._fail(ProtocolError("data received with no request outstanding"))
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._complete(keep_alive=False)  # a 101 we did not ask for: its status is the answer
            return
        except HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response: {exc}"))
            return
        if self.waiter is not None and self.received > MAX_HEAD_BYTES:
            # Memory stays bounded whatever the server sends until the deadline.
            if not self.status:
                self._fail(ProtocolError(_HEAD_TOO_LARGE))  # the head has not even ended
            elif self.received > MAX_HEAD_BYTES + DRAIN_LIMIT:
                self._complete(keep_alive=False)  # e.g. chunk extensions without end

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            return
        if self.status and not self.framed:
            self._complete(keep_alive=False)  # a close-delimited body ends here
        else:
            self._fail(exc or IncompleteResponseError("connection closed before the response"))

    # --- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.waiter is None:
            # More bytes after a complete response (in the same read): never let them
            # answer the next request. feed_data raises; data_received closes the connection.
            raise ProtocolError("a response came with no request outstanding")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value)
        lower = name.lower()
        if lower == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.framed = True

    def on_headers_complete(self) -> None:
        if self.head_size > MAX_HEAD_BYTES:
            raise ProtocolError(_HEAD_TOO_LARGE)  # came in one read: see data_received
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if len(self.preview) < self.preview_limit:
            self.preview += body[: self.preview_limit - len(self.preview)]
        if self.body_size > DRAIN_LIMIT:
            self._complete(keep_alive=False)  # not worth reading: close instead

    def on_message_complete(self) -> None:
        status = self.status
        if 100 <= status < 200 and status != 101:
            # An informational response (e.g. 103 Early Hints): the final one follows.
            self.status = 0
            self.retry_after = None
            self.framed = False
            return
        # After a 101 (an upgrade nobody asked for) the connection no longer speaks HTTP/1.1.
        self._complete(status != 101 and self.parser.should_keep_alive())

    # --- exchanges -------------------------------------------------------------------------
    def start(
        self,
        data: bytes,
        deadline: float,
        timeout: float,
        preview: int = 0,
        preview_out: list[bytes] | None = None,
    ) -> asyncio.Future[Outcome]:
        """Send ``data``; the future gets the request's outcome (never an exception): the
        response's, or a connection error, or a timeout when :meth:`expire` is called. By
        then the connection is back in its pool, or closed. With ``preview_out``, the first
        ``preview`` bytes of the body are appended to it."""
        transport = self.transport
        assert transport is not None
        self.deadline = deadline
        self.timeout = timeout
        self.status = 0
        self.retry_after = None
        self.framed = False
        self.reusable = False
        self.body_size = 0
        self.received = 0
        self.head_size = 0
        self.preview = b""
        self.preview_limit = preview
        self.preview_out = preview_out
        transport.write(data)
        waiter: asyncio.Future[Outcome] = self.loop.create_future()
        self.waiter = waiter
        self.pool.busy.add(self)
        return waiter

    def _complete(self, keep_alive: bool) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        self.waiter = None
        pool = self.pool
        pool.busy.discard(self)
        reusable = self.reusable = keep_alive and not self.closed
        if not keep_alive and self.transport is not None:
            self.transport.close()
        if self.preview_out is not None:
            self.preview_out.append(self.preview)
            self.preview_out = None
        outcome = classify_status(self.status, self.retry_after)
        if reusable:
            pool.release(self, pool.clock())
        else:
            pool.discard(self)
        if not waiter.done():
            waiter.set_result(outcome)

    def _fail(self, exc: BaseException) -> None:
        """Close now; the exchange under way, if any, ends with ``exc``'s outcome."""
        waiter = self.waiter
        self.waiter = None
        self.reusable = False
        self.abort()
        if waiter is None:
            return  # idle: its pool closes it when it takes it
        pool = self.pool
        pool.busy.discard(self)
        pool.free_slot()
        self.preview_out = None
        if not waiter.done():
            waiter.set_result(outcome_for_error(no_response(exc, self.timeout)))

    def cancel(self) -> None:
        """The sender gave up (cancelled) before the response: the response may still
        come, so the connection is closed, and its slot freed."""
        if self.waiter is not None:
            self._fail(ConnectionAbortedError("the request was cancelled"))

    def expire(self) -> None:
        """The request's deadline passed: fail it and close the connection."""
        self._fail(TimeoutError())

    def unread(self) -> bool:
        """Whether the socket holds bytes the loop has not read yet, or the end of the
        stream (or an error): before a request is written, these are no answer to it (over
        TLS they may also be records without data, such as session tickets). A socket
        closed here polls as invalid: True as well."""
        return bool(self.poller.poll(0))

    def abort(self) -> None:
        """Close now, dropping anything unsent (the connection's state is unknown)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HostPool:
    """One destination host: its (checked) addresses, or why it is refused, and connections."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        now: float,
        busy: set[Connection] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheme = scheme
        self.host = host  # as in the URL, without brackets
        self.name = ascii_host(host)  # for DNS and SNI; a ValueError when it has none
        self.port = port
        self.host_header = host_header(scheme, host, port)
        self.lines: RequestLines = {}  # request lines (h1_wire.encode_request)
        self.addresses: tuple[str, ...] = ()  # where connections go, in order
        self.expires = 0.0  # when the name must be resolved (and checked) again
        self.refusal: str | None = None
        self.generation = 0  # bumped when the addresses change: older connections retire
        self.idle: list[Connection] = []
        self.open = 0  # connections open or being opened
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()
        self.resolving = 0  # requests resolving the name: the sweep keeps the pool
        self.busy: set[Connection] = set() if busy is None else busy  # exchanges under way
        self.clock = clock  # for idle_since
        self.last_used = now

    def checked(self, addresses: list[str], refusal: str | None, expires: float) -> None:
        """The result of resolving (and checking) the name: connections go to
        ``addresses`` only; when they change, connections to the previous ones retire."""
        self.refusal = refusal
        self.expires = expires
        fresh = () if refusal is not None else tuple(addresses)
        if set(fresh) != set(self.addresses):  # not a mere reordering (round-robin DNS)
            self.addresses = fresh
            self.generation += 1
            self.close_idle()

    def addr_infos(self) -> list[AddrInfoType]:
        """The addresses, as ``getaddrinfo`` gives them, for Happy Eyeballs."""
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM,
             socket.IPPROTO_TCP, "", (address, self.port))
            for address in self.addresses
        ]  # fmt: skip

    def prefer(self, address: str) -> None:
        """New connections try ``address`` (the last one that connected) first."""
        if address in self.addresses and self.addresses[0] != address:
            self.addresses = (address, *[a for a in self.addresses if a != address])

    def take_idle(self, now: float) -> Connection | None:
        """An idle connection that is still open and fresh, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if (
                not conn.closed
                and transport is not None
                and not transport.is_closing()
                and now - conn.idle_since < IDLE_TIMEOUT_SECONDS
                and not conn.poller.poll(0)  # unread(): since the last response, no HTTP
            ):
                return conn
            self.discard(conn)
        return None

    def release(self, conn: Connection, now: float) -> None:
        """Give a connection back after a complete, keep-alive response."""
        if conn.closed or conn.generation != self.generation:
            self.discard(conn)
            return
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = now
        self.idle.append(conn)

    def discard(self, conn: Connection) -> None:
        """Close ``conn`` and free its slot."""
        conn.abort()
        self.free_slot()

    def free_slot(self) -> None:
        """One connection fewer: hand the slot to the first waiting request, if any."""
        self.open -= 1
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # a free slot: the waiter opens a connection
                self.open += 1
                return

    def close_idle(self, older_than: float | None = None) -> None:
        keep = []
        for conn in self.idle:
            if older_than is None or conn.closed or conn.idle_since < older_than:
                self.discard(conn)
            else:
                keep.append(conn)
        self.idle = keep
