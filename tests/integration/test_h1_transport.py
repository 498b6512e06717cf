"""The h1 transport against scripted raw HTTP servers on 127.0.0.1 (and 127.0.0.2).

What the shared delivery contract (``test_transport_contract.py``) cannot see:
connection reuse and retirement, response framing (chunked, close-delimited,
1xx, oversized and truncated bodies), malformed answers, idle expiry, slot
hand-over on cancellation, ``close()``, and the destination guard pinning
connections to the address it checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import pytest

from stream_wfm.delivery import destinations
from stream_wfm.delivery import h1_transport as module
from stream_wfm.delivery.h1_connection import (
    DRAIN_LIMIT,
    IDLE_TIMEOUT_SECONDS,
    MAX_HEAD_BYTES,
    Connection,
    HostPool,
)
from stream_wfm.delivery.h1_transport import H1Transport
from stream_wfm.delivery.outcome import Outcome, OutcomeKind
from stream_wfm.delivery.request import WebhookRequest, host_key_of
from tests.helpers.resolving import resolving_to
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: How long to wait for something that takes milliseconds on loopback. Shorter than the
#: transport's sweep interval (5 s), so the sweeper cannot close what a test expects the
#: transport itself to close.
QUICK = 2.0


def _response(status: str, body: bytes = b"", *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class Answer:
    """The server's answer to one request."""

    data: bytes = OK
    #: After writing: None keeps the connection open for the next request; "close" closes
    #: it; "half_close" sends FIN and waits for the client to close its side.
    then: Literal["close", "half_close"] | None = None
    #: Wait for this before answering.
    hold: asyncio.Event | None = None
    #: Written after ``data``, once ``rest_hold`` is set.
    rest: bytes = b""
    rest_hold: asyncio.Event | None = None


@dataclass
class Got:
    connection: int  # the index of the accepted connection it came on
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None


@dataclass
class ScriptedServer:
    """Reads each request (head up to CRLFCRLF, then Content-Length bytes) and answers it
    with the next scripted :class:`Answer` (then :data:`OK` once the script is used up)."""

    script: list[Answer]
    host: str = "127.0.0.1"
    port: int = 0
    accepted: int = 0
    open: int = 0
    peak_open: int = 0
    written: int = 0  # answers whose ``data`` has been written
    requests: list[Got] = field(default_factory=list)
    #: Connections (by index) the client closed or reset.
    client_closed: list[int] = field(default_factory=list)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def connections(self) -> list[int]:
        """The connection each request came on, in order."""
        return [got.connection for got in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.accepted
        self.accepted += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            await self._serve(index, reader, writer)
        except asyncio.CancelledError:
            # The server is shutting down. A handler task that ends cancelled makes
            # Python 3.11's asyncio.start_server log an error: end normally instead.
            pass
        finally:
            self.open -= 1
            writer.close()

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.client_closed.append(index)
                    return
                got = Got(index, head, b"")
                got.body = await reader.readexactly(int(got.header("Content-Length") or 0))
                self.requests.append(got)
                answer = self.script.pop(0) if self.script else Answer()
                if answer.hold is not None:
                    await answer.hold.wait()
                writer.write(answer.data)
                await writer.drain()
                self.written += 1
                if answer.rest_hold is not None:
                    await answer.rest_hold.wait()
                    writer.write(answer.rest)
                    await writer.drain()
                if answer.then == "close":
                    return
                if answer.then == "half_close":
                    writer.write_eof()
                    while await reader.read(65536):
                        pass
                    self.client_closed.append(index)
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_closed.append(index)


@contextlib.asynccontextmanager
async def scripted_server(
    *answers: Answer | bytes, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ScriptedServer]:
    script = [a if isinstance(a, Answer) else Answer(a) for a in answers]
    srv = ScriptedServer(script, host)
    server = await asyncio.start_server(srv.handle, host, port)
    srv.port = server.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        server.close()
        for writer in srv._writers:
            writer.close()
        for task in srv._tasks:
            task.cancel()  # e.g. one still holding an answer
        await asyncio.gather(*srv._tasks)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def servers_on_one_port(
    first: list[Answer], second: list[Answer]
) -> AsyncIterator[tuple[ScriptedServer, ScriptedServer]]:
    """Two scripted servers on one port: at 127.0.0.1 and at 127.0.0.2 (one host key)."""
    for _attempt in range(20):
        async with contextlib.AsyncExitStack() as stack:
            one = await stack.enter_async_context(scripted_server(*first))
            try:
                two = await stack.enter_async_context(
                    scripted_server(*second, host="127.0.0.2", port=one.port)
                )
            except OSError:
                continue  # that port is taken on 127.0.0.2: try another
            yield one, two
            return
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


def _request(url: str, *, timeout: float = 5.0, body: bytes = b"{}") -> WebhookRequest:
    return WebhookRequest(
        "POST", url, (("X-WFM-Event-Id", "ev-1"),), body, timeout, host_key_of(url), "ev-1"
    )


@pytest.fixture
async def make_transport() -> AsyncIterator[Callable[..., H1Transport]]:
    made: list[H1Transport] = []

    def make(
        per_host: int = 4,
        *,
        allow_private_destinations: bool = True,
        resolve: destinations.Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> H1Transport:
        transport = H1Transport(
            max_in_flight=64,
            max_in_flight_per_host=per_host,
            allow_private_destinations=allow_private_destinations,
            resolve=resolve,
            clock=clock,
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


MakeTransport = Callable[..., H1Transport]


def _is_connection_error(outcome: Outcome) -> bool:
    return (
        outcome.kind is OutcomeKind.RETRYABLE
        and outcome.status_class == "connection_error"
        and outcome.status is None
    )


def _waiting_for_a_slot(transport: H1Transport, url: str) -> int:
    """How many sends wait for a connection to ``url``'s host (the pool's queue)."""
    pool = transport._pools.get(host_key_of(url))
    return 0 if pool is None else len(pool.waiters)


# --- connection reuse --------------------------------------------------------------------------
async def test_open_connections_over_all_hosts_stay_within_max_in_flight() -> None:
    """Opening a connection beyond ``max_in_flight`` (over all hosts) first closes the
    longest-idle one, so many destination hosts cannot use up file descriptors."""
    transport = H1Transport(
        max_in_flight=2, max_in_flight_per_host=2, allow_private_destinations=True
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            a, b, c = [await stack.enter_async_context(scripted_server()) for _ in range(3)]
            for srv in (a, b, c, b):
                assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
            # A's connection was idle longest when C needed one: closed, B's kept.
            await wait_until(lambda: a.client_closed == [0], QUICK, "A's connection closed")
            assert b.client_closed == []
            assert (a.accepted, b.accepted, c.accepted) == (1, 1, 1)
            assert b.connections() == [0, 0]
            # Back to A: a new connection, and C's goes (B's was used after C's).
            assert (await transport.send(_request(a.url()))).kind is OutcomeKind.DELIVERED
            await wait_until(lambda: c.client_closed == [0], QUICK, "C's connection closed")
            assert a.accepted == 2
            assert b.client_closed == []
    finally:
        await transport.close()


async def test_sequential_requests_to_one_host_share_one_connection(
    make_transport: MakeTransport,
) -> None:
    async with scripted_server() as srv:
        transport = make_transport()
        for i in range(5):
            outcome = await transport.send(_request(srv.url(f"/hook/{i}")))
            assert outcome.kind is OutcomeKind.DELIVERED
    assert srv.accepted == 1
    assert srv.connections() == [0] * 5
    assert [got.head.split(b" ")[1] for got in srv.requests] == [
        f"/hook/{i}".encode() for i in range(5)
    ]


@pytest.mark.parametrize(
    "closing",
    [
        _response("200 OK", b"ok", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",  # 1.0: close unless keep-alive
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_response_without_keep_alive_is_delivered_and_its_connection_closed(
    make_transport: MakeTransport, closing: bytes
) -> None:
    # The server leaves the socket open: the client must close it, and not reuse it.
    async with scripted_server(closing) as srv:
        transport = make_transport()
        first = await transport.send(_request(srv.url()))
        second = await transport.send(_request(srv.url()))
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
    assert first.kind is OutcomeKind.DELIVERED
    assert second.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


async def test_chunked_body_is_read_and_the_connection_reused(
    make_transport: MakeTransport,
) -> None:
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with scripted_server(chunked, chunked) as srv:
        transport = make_transport()
        response = await transport.send_with_response(_request(srv.url()))
        short = await transport.send_with_response(_request(srv.url()), preview=6)
        after = await transport.send(_request(srv.url()))
    assert response.outcome.kind is OutcomeKind.DELIVERED
    assert response.outcome.status == 202
    assert response.body_preview == b"Wikipedia"
    assert short.body_preview == b"Wikipe"
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 0, 0]


@pytest.mark.parametrize(("status", "kind"), [(200, "delivered"), (503, "retryable")])
async def test_close_delimited_body_is_read_to_the_end(
    make_transport: MakeTransport, status: int, kind: str
) -> None:
    body = b"no length: the body ends when the connection does"
    head = f"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n\r\n".encode()
    async with scripted_server(Answer(head + body, then="close")) as srv:
        transport = make_transport()
        response = await transport.send_with_response(_request(srv.url()), preview=4096)
        after = await transport.send(_request(srv.url()))
    assert response.outcome.kind is OutcomeKind(kind)
    assert response.outcome.status == status
    assert response.body_preview == body
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


async def test_a_body_beyond_the_drain_limit_closes_the_connection(
    make_transport: MakeTransport,
) -> None:
    big = _response("503 Service Unavailable", b"x" * (DRAIN_LIMIT + 1), "Retry-After: 7")
    async with scripted_server(big) as srv:
        transport = make_transport()
        response = await transport.send_with_response(_request(srv.url()), preview=10)
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
        after = await transport.send(_request(srv.url()))
    # The outcome is the status's, not a connection error.
    assert response.outcome.kind is OutcomeKind.RETRYABLE
    assert response.outcome.status == 503
    assert response.outcome.retry_after == 7.0
    assert response.body_preview == b"x" * 10
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


async def test_a_body_of_exactly_the_drain_limit_keeps_the_connection(
    make_transport: MakeTransport,
) -> None:
    async with scripted_server(_response("200 OK", b"x" * DRAIN_LIMIT)) as srv:
        transport = make_transport()
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 0]


@pytest.mark.parametrize(
    "informational",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    ],
    ids=["103", "100", "102-and-103"],
)
async def test_informational_responses_are_skipped(
    make_transport: MakeTransport, informational: bytes
) -> None:
    final = _response("200 OK", b"final")
    async with scripted_server(informational + final) as srv:
        transport = make_transport()
        response = await transport.send_with_response(_request(srv.url()))
        after = await transport.send(_request(srv.url()))
    assert response.outcome.kind is OutcomeKind.DELIVERED
    assert response.outcome.status == 200
    assert response.body_preview == b"final"
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 0]


async def test_an_informational_response_and_the_final_one_in_separate_writes(
    make_transport: MakeTransport,
) -> None:
    final = asyncio.Event()
    answer = Answer(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", rest_hold=final)
    answer.rest = _response("404 Not Found", b"gone")
    async with scripted_server(answer) as srv:
        transport = make_transport()
        send = asyncio.ensure_future(transport.send_with_response(_request(srv.url())))
        await wait_until(lambda: srv.written == 1, QUICK, "the 103 written")
        assert not send.done()
        final.set()
        response = await asyncio.wait_for(send, QUICK)
    assert response.outcome.kind is OutcomeKind.PERMANENT
    assert response.outcome.status == 404
    assert response.body_preview == b"gone"


async def test_an_informational_response_then_a_close_is_a_connection_error(
    make_transport: MakeTransport,
) -> None:
    """No final response: the 103 is not the outcome (a 1xx would be permanent)."""
    async with scripted_server(Answer(b"HTTP/1.1 103 Early Hints\r\n\r\n", then="close")) as srv:
        outcome = await make_transport().send(_request(srv.url()))
    assert _is_connection_error(outcome), outcome


# --- broken answers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("a\r\nX-Injected: 1", "a header name or value contains CR or LF"),
        ("\u20ac", "a header is not Latin-1 text"),
    ],
    ids=["crlf", "not-latin-1"],
)
async def test_a_request_that_cannot_be_encoded_is_a_connection_error(
    make_transport: MakeTransport, value: str, error: str
) -> None:
    """Config validation refuses such headers; one that got through anyway is never
    written (no request smuggling) and never raises out of send()."""
    async with scripted_server() as srv:
        transport = make_transport()
        request = _request(srv.url())
        bad = replace(request, headers=(("X-A", value), *request.headers))
        outcome = await transport.send(bad)
        after = await transport.send(request)
    assert _is_connection_error(outcome), outcome
    assert outcome.error == f"connection error: UnencodableRequestError: {error}"
    assert after.kind is OutcomeKind.DELIVERED
    assert len(srv.requests) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: "
        + b"a" * (MAX_HEAD_BYTES + 1)
        + b"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 3000,
    ],
    ids=["not-http", "bad-status", "two-lengths", "bad-chunk-size", "huge-head", "endless-head"],
)
async def test_a_malformed_answer_is_a_connection_error_and_the_next_request_reconnects(
    make_transport: MakeTransport, garbage: bytes
) -> None:
    async with scripted_server(garbage) as srv:
        transport = make_transport()
        outcome = await transport.send(_request(srv.url()))
        after = await transport.send(_request(srv.url()))
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
    assert _is_connection_error(outcome), outcome
    assert outcome.error is not None
    assert outcome.error.startswith("connection error: ProtocolError: ")
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    make_transport: MakeTransport,
) -> None:
    async with scripted_server(Answer(OK, then="half_close")) as srv:
        transport = make_transport()
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
        # The server closes the kept-alive connection; the client notices and closes too.
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
        after = await transport.send(_request(srv.url()))
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"",
    ],
    ids=["mid-body", "mid-chunk", "mid-head", "nothing"],
)
async def test_a_connection_closed_before_the_response_ends_is_a_connection_error(
    make_transport: MakeTransport, partial: bytes
) -> None:
    async with scripted_server(Answer(partial, then="close")) as srv:
        transport = make_transport()
        outcome = await transport.send(_request(srv.url()))
        after = await transport.send(_request(srv.url()))
    assert _is_connection_error(outcome), outcome
    assert outcome.error == (
        "connection error: IncompleteResponseError: connection closed before the response"
    )
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1]


async def test_bytes_after_a_complete_response_do_not_answer_the_next_request(
    make_transport: MakeTransport,
) -> None:
    """A response, then in the same packet the start of another one nobody asked for (a
    server bug). That connection's framing is lost: whatever the transport does, the next
    request must not be answered by the leftover bytes."""
    stray = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    async with scripted_server(stray, _response("503 Service Unavailable")) as srv:
        transport = make_transport()
        first = await transport.send(_request(srv.url()))
        second = await transport.send(_request(srv.url()))
    assert first.kind is OutcomeKind.DELIVERED
    # Either the connection was dropped (the 503 comes on a new one) or the 503 is read.
    assert second.status == 503 or _is_connection_error(second), second


async def test_an_unrequested_upgrade_is_the_outcome_and_the_connection_closed(
    make_transport: MakeTransport,
) -> None:
    upgrade = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    async with scripted_server(upgrade) as srv:
        transport = make_transport()
        outcome = await transport.send(_request(srv.url()))
        after = await transport.send(_request(srv.url()))
        # After a 101 the connection no longer speaks HTTP/1.1: it is closed, never reused.
        assert srv.connections() == [0, 1]
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.status == 101
    assert after.kind is OutcomeKind.DELIVERED


# --- idle expiry -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("idle", "connections"),
    [(IDLE_TIMEOUT_SECONDS - 1, [0, 0]), (IDLE_TIMEOUT_SECONDS + 1, [0, 1])],
)
async def test_an_idle_connection_expires_by_the_injected_clock(
    make_transport: MakeTransport, idle: float, connections: list[int]
) -> None:
    now = [1000.0]
    async with scripted_server() as srv:
        transport = make_transport(clock=lambda: now[0])
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
        now[0] += idle
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
        if connections == [0, 1]:  # the expired connection is closed, not just left
            await wait_until(
                lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0"
            )
    assert srv.connections() == connections


# --- slots and cancellation ----------------------------------------------------------------------
async def test_cancelling_a_send_waiting_for_a_slot_frees_nothing(
    make_transport: MakeTransport,
) -> None:
    release = asyncio.Event()
    async with scripted_server(Answer(OK, hold=release)) as srv:
        transport = make_transport(per_host=1)
        url = srv.url()
        first = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: len(srv.requests) == 1, QUICK, "the first request held")
        waiting = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: _waiting_for_a_slot(transport, url) == 1, QUICK, "a send waits")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert _waiting_for_a_slot(transport, url) == 0
        # Two more: with the slot still taken by the first, both must wait for it.
        later = [asyncio.ensure_future(transport.send(_request(url))) for _ in range(2)]
        await wait_until(lambda: _waiting_for_a_slot(transport, url) == 2, QUICK, "two sends wait")
        release.set()
        outcomes = await asyncio.wait_for(asyncio.gather(first, *later), QUICK)
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 3
    assert srv.accepted == 1
    assert srv.peak_open == 1
    assert srv.connections() == [0, 0, 0]


async def test_cancelling_a_waiting_send_when_the_held_connection_closes(
    make_transport: MakeTransport,
) -> None:
    """The first response closes its connection: the freed slot goes to the next live waiter."""
    release = asyncio.Event()
    closing = _response("200 OK", b"", "Connection: close")
    async with scripted_server(Answer(closing, hold=release)) as srv:
        transport = make_transport(per_host=1)
        url = srv.url()
        first = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: len(srv.requests) == 1, QUICK, "the first request held")
        waiting = [asyncio.ensure_future(transport.send(_request(url))) for _ in range(3)]
        await wait_until(
            lambda: _waiting_for_a_slot(transport, url) == 3, QUICK, "three sends wait"
        )
        waiting[0].cancel()
        waiting[2].cancel()
        release.set()
        outcomes = await asyncio.wait_for(asyncio.gather(first, waiting[1]), QUICK)
        for task in (waiting[0], waiting[2]):
            with pytest.raises(asyncio.CancelledError):
                await task
        after = await asyncio.wait_for(transport.send(_request(url)), QUICK)
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 2
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 1, 1]


@pytest.mark.parametrize("in_a_task", [False, True])
async def test_cancelling_a_send_in_flight_closes_its_connection_and_frees_its_slot(
    make_transport: MakeTransport, in_a_task: bool
) -> None:
    """A send on a pooled connection (h1's hot path: a future, no coroutine) cancelled
    while its request is out: the response may still come, so that connection is closed,
    and its slot goes to the next send, which opens a new one."""
    release = asyncio.Event()
    async with scripted_server(OK, Answer(OK, hold=release)) as srv:
        transport = make_transport(per_host=1)
        url = srv.url()
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        sent = transport.send(_request(url))  # on the pooled connection
        held = asyncio.ensure_future(_await(sent) if in_a_task else sent)
        await wait_until(lambda: len(srv.requests) == 2, QUICK, "the second request held")
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        after = await asyncio.wait_for(transport.send(_request(url)), QUICK)
        release.set()
    assert after.kind is OutcomeKind.DELIVERED
    assert srv.connections() == [0, 0, 1]


async def _await(awaitable: Awaitable[Outcome]) -> Outcome:
    return await awaitable


# --- close() -------------------------------------------------------------------------------------
async def test_send_after_close_is_a_connection_error(make_transport: MakeTransport) -> None:
    async with scripted_server() as srv:
        transport = make_transport()
        assert (await transport.send(_request(srv.url()))).kind is OutcomeKind.DELIVERED
        await transport.close()
        outcome = await transport.send(_request(srv.url()))
        response = await transport.send_with_response(_request(srv.url()))
        # The idle connection is closed too.
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")
    assert _is_connection_error(outcome), outcome
    assert outcome.error == "connection error: ConnectionError: transport closed"
    assert response.outcome == outcome
    assert response.body_preview == b""
    assert len(srv.requests) == 1


async def test_close_fails_sends_waiting_for_a_slot(make_transport: MakeTransport) -> None:
    release = asyncio.Event()
    async with scripted_server(Answer(OK, hold=release)) as srv:
        transport = make_transport(per_host=1)
        url = srv.url()
        first = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: len(srv.requests) == 1, QUICK, "the first request held")
        waiting = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: _waiting_for_a_slot(transport, url) == 1, QUICK, "a send waits")
        await transport.close()
        outcome = await asyncio.wait_for(waiting, QUICK)
        release.set()
        await asyncio.wait_for(first, QUICK)
    assert _is_connection_error(outcome), outcome
    assert len(srv.requests) == 1


async def test_close_also_closes_a_connection_in_use(make_transport: MakeTransport) -> None:
    """close() closes every connection: one busy at the time must not stay open afterwards."""
    release = asyncio.Event()
    async with scripted_server(Answer(OK, hold=release)) as srv:
        transport = make_transport()
        busy = asyncio.ensure_future(transport.send(_request(srv.url())))
        await wait_until(lambda: len(srv.requests) == 1, QUICK, "the request held")
        await transport.close()
        release.set()
        outcome = await asyncio.wait_for(busy, QUICK)  # an outcome, never an exception
        assert isinstance(outcome, Outcome)
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the client closes connection 0")


# --- destination guard: connections go to the checked address ----------------------------------
async def test_connects_to_the_checked_address_and_keeps_the_name(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    # Treat loopback as public for this test only, so a checked name can be followed here.
    monkeypatch.setattr(destinations, "address_refusal", lambda ip: None)
    answers = {"hooks.example.test": ["127.0.0.1"]}
    asked: list[str] = []
    now = [1000.0]

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    transport = make_transport(
        allow_private_destinations=False, resolve=resolve, clock=lambda: now[0]
    )
    async with servers_on_one_port([], []) as (one, two):
        url = one.url(host="hooks.example.test")
        # The name is not in any DNS: only the checked address can be reached.
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert asked == ["hooks.example.test"]  # checked once within the TTL
        host = f"hooks.example.test:{one.port}"  # the port is the same at both addresses
        assert [got.header("Host") for got in one.requests] == [host, host]
        assert one.connections() == [0, 0]
        # Just before the TTL ends: the first connection has been idle too long, a new one
        # opens (so the one open when the address changes is fresh, not idle-expired).
        now[0] += module.DNS_TTL_SECONDS - 1
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert one.accepted == 2
        # After the TTL the name is checked again and now points elsewhere: the (fresh)
        # idle connection to the old address is closed, new requests go to the new one.
        now[0] += 2
        answers["hooks.example.test"] = ["127.0.0.2"]
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        await wait_until(
            lambda: 1 in one.client_closed, QUICK, "the old address's connection closed"
        )
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        assert asked == ["hooks.example.test"] * 2
        assert len(one.requests) == 3
        assert two.connections() == [0, 0]
        assert [got.header("Host") for got in two.requests] == [host, host]


async def test_a_connection_busy_when_the_address_changes_is_retired(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    monkeypatch.setattr(destinations, "address_refusal", lambda ip: None)
    answers = ["127.0.0.1"]
    now = [1000.0]

    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    release = asyncio.Event()
    transport = make_transport(
        allow_private_destinations=False, resolve=resolve, clock=lambda: now[0]
    )
    async with servers_on_one_port([Answer(), Answer(OK, hold=release)], []) as (one, two):
        url = one.url(host="hooks.example.test")
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        # Shortly before the TTL ends (the first connection has expired: a new one opens),
        # a request starts and is held.
        now[0] += module.DNS_TTL_SECONDS - 5
        busy = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: len(one.requests) == 2, QUICK, "the second request held")
        # The TTL ends, the name now points elsewhere: new requests go there.
        now[0] += 6
        answers[:] = ["127.0.0.2"]
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        # The held request completes (kept alive, not idle long), but its connection goes
        # to the old address: it is closed instead of pooled.
        release.set()
        assert (await asyncio.wait_for(busy, QUICK)).kind is OutcomeKind.DELIVERED
        await wait_until(lambda: 1 in one.client_closed, QUICK, "the old connection closed")
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
    assert one.connections() == [0, 1]
    assert two.connections() == [0, 0]


async def test_a_name_that_now_resolves_to_a_refused_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    refused = {"127.0.0.2"}
    monkeypatch.setattr(
        destinations, "address_refusal", lambda ip: "private" if ip in refused else None
    )
    answers = ["127.0.0.1"]
    now = [1000.0]

    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    transport = make_transport(
        allow_private_destinations=False, resolve=resolve, clock=lambda: now[0]
    )
    async with scripted_server() as srv:
        url = srv.url(host="hooks.example.test")
        assert (await transport.send(_request(url))).kind is OutcomeKind.DELIVERED
        # Any one refused address refuses the name, even after a public one.
        now[0] += module.DNS_TTL_SECONDS + 1
        answers[:] = ["127.0.0.1", "127.0.0.2"]
        outcome = await transport.send(_request(url))
        assert outcome.kind is OutcomeKind.PERMANENT
        assert outcome.reason == "destination_not_allowed"
        assert outcome.error is not None
        assert "hooks.example.test resolves to a private address" in outcome.error
        # The connection to the previously checked address is closed, not kept.
        await wait_until(lambda: 0 in srv.client_closed, QUICK, "the connection closed")
    assert len(srv.requests) == 1


async def test_a_name_resolving_to_no_address_is_refused(make_transport: MakeTransport) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return []

    transport = make_transport(allow_private_destinations=False, resolve=resolve)
    outcome = await transport.send(_request("http://hooks.example.test:9/hook"))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason == "destination_not_allowed"
    assert outcome.error is not None
    assert "hooks.example.test resolves to no address" in outcome.error


async def test_an_unresolvable_name_is_a_connection_error(make_transport: MakeTransport) -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    transport = make_transport(allow_private_destinations=False, resolve=resolve)
    outcome = await transport.send(_request("http://nowhere.example.test/hook"))
    again = await transport.send(_request("http://nowhere.example.test/hook"))
    assert _is_connection_error(outcome), outcome
    assert _is_connection_error(again), again
    assert asked == ["nowhere.example.test"] * 2  # a failure is not cached as an answer


@pytest.mark.parametrize("allow_private", [True, False], ids=["connect-by-name", "guard"])
async def test_a_name_no_resolver_can_encode_is_a_connection_error(
    make_transport: MakeTransport, allow_private: bool
) -> None:
    """A DNS label over 63 characters makes the resolver raise UnicodeError (a ValueError),
    not OSError: still an outcome, never an exception out of send()."""
    transport = make_transport(allow_private_destinations=allow_private)
    outcome = await transport.send(_request(f"http://{'a' * 64}.example.test/hook"))
    assert _is_connection_error(outcome), outcome


async def test_a_hanging_resolver_ends_within_the_request_timeout(
    make_transport: MakeTransport,
) -> None:
    never = asyncio.Event()

    async def resolve(host: str, port: int) -> list[str]:
        await never.wait()
        return []

    transport = make_transport(allow_private_destinations=False, resolve=resolve)
    outcome = await asyncio.wait_for(
        transport.send(_request("http://slow.example.test/hook", timeout=0.2)), QUICK
    )
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.status_class == "timeout"
    assert outcome.error == "timeout after 0.2s"


# --- several addresses: fallback and Happy Eyeballs (RFC 8305) ------------------------------------
def _loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat loopback as public for this test only, so a checked name can be followed here."""
    monkeypatch.setattr(destinations, "address_refusal", lambda ip: None)


@contextlib.contextmanager
def hanging_address(host: str, port: int) -> Iterator[None]:
    """``host:port`` accepts no connection and refuses none: a listener whose accept queue
    (backlog 0) is full, so the kernel drops further SYNs and ``connect`` hangs, as with a
    black-holed address."""
    listener = socket.socket()
    filler = socket.socket()
    try:
        listener.bind((host, port))
        listener.listen(0)
        filler.connect((host, port))  # fills the queue: nobody ever accepts it
        yield
    finally:
        filler.close()
        listener.close()


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
async def test_a_dead_first_address_falls_back_to_the_next(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport, guard: bool
) -> None:
    """The name resolves to a dead address (nothing listens on 127.0.0.2) then a live one:
    the request goes to the live one, to the name (Host), as aiohttp and urllib3 do."""
    _loopback_is_public(monkeypatch)
    asked: list[str] = []
    resolve = resolving_to(["127.0.0.2", "127.0.0.1"], asked)
    transport = make_transport(allow_private_destinations=not guard, resolve=resolve)
    async with scripted_server() as srv:
        url = srv.url(host="hooks.example.test")  # in no DNS: only the stub answers
        outcomes = [await transport.send(_request(url)) for _ in range(2)]
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 2, outcomes
    assert srv.connections() == [0, 0]
    assert [got.header("Host") for got in srv.requests] == [f"hooks.example.test:{srv.port}"] * 2
    assert asked == ["hooks.example.test"]  # resolved once, with the guard or without
    # The address that connected is tried first for the next connection.
    assert transport._pools[host_key_of(url)].addresses == ("127.0.0.1", "127.0.0.2")


async def test_a_hanging_first_address_is_overtaken_after_the_attempt_delay(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    """RFC 8305: while the attempt to the first address hangs (no answer, no refusal), the
    next address is tried after the connection attempt delay, well within the timeout."""
    _loopback_is_public(monkeypatch)
    resolve = resolving_to(["127.0.0.2", "127.0.0.1"])
    transport = make_transport(allow_private_destinations=False, resolve=resolve)
    for _attempt in range(20):
        async with scripted_server() as srv:
            try:
                hang = hanging_address("127.0.0.2", srv.port)
                hang.__enter__()
            except OSError:
                continue  # that port is taken on 127.0.0.2: try another
            try:
                started = time.monotonic()
                outcome = await transport.send(_request(srv.url(host="h.example.test"), timeout=3))
                elapsed = time.monotonic() - started
            finally:
                hang.__exit__(None, None, None)
            assert outcome.kind is OutcomeKind.DELIVERED, outcome
            assert elapsed < 2.0
            assert len(srv.requests) == 1
            return
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


async def test_every_address_dead_is_a_connection_error(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    _loopback_is_public(monkeypatch)
    async with scripted_server() as srv:
        port = srv.port
    # Nothing listens on that port any more, at either address.
    resolve = resolving_to(["127.0.0.2", "127.0.0.1"])
    transport = make_transport(allow_private_destinations=False, resolve=resolve)
    outcome = await transport.send(_request(f"http://hooks.example.test:{port}/hook"))
    assert _is_connection_error(outcome), outcome


# --- the idle sweep and a pool being resolved -----------------------------------------------------
async def test_a_pool_being_resolved_survives_a_sweep_and_close_closes_its_connection(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    """A sweep while a new host's name is being resolved must not forget its pool: the
    connection opened afterwards would escape the per-host and overall limits and close()."""
    _loopback_is_public(monkeypatch)
    now = [1000.0]
    resolving = asyncio.Event()
    answer = asyncio.Event()

    async def resolve(host: str, port: int) -> list[str]:
        resolving.set()
        await answer.wait()
        return ["127.0.0.1"]

    transport = make_transport(
        allow_private_destinations=False, resolve=resolve, clock=lambda: now[0]
    )
    async with scripted_server() as srv:
        url = srv.url(host="hooks.example.test")
        send = asyncio.ensure_future(transport.send(_request(url)))
        await asyncio.wait_for(resolving.wait(), QUICK)
        now[0] += 2 * module.DNS_TTL_SECONDS  # however long ago the pool was made
        transport._sweep(asyncio.get_running_loop())
        answer.set()
        assert (await asyncio.wait_for(send, QUICK)).kind is OutcomeKind.DELIVERED
        assert host_key_of(url) in transport._pools  # its connection is counted and closed
        await transport.close()
        await wait_until(lambda: srv.client_closed == [0], QUICK, "close() closes connection 0")


# --- bytes from the server before the request ----------------------------------------------------
@dataclass
class RawServer:
    """A raw asyncio server: writes ``on_accept`` when a connection is accepted, and
    ``answer`` for each request head it reads."""

    on_accept: bytes = b""
    answer: bytes = b""
    connections: list[asyncio.Transport] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)  # the connection each came on
    closed: list[int] = field(default_factory=list)
    port: int = 0

    def protocol(self) -> asyncio.Protocol:
        server = self

        class Handler(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.index = len(server.connections)
                self.buffer = b""
                server.connections.append(transport)
                if server.on_accept:
                    transport.write(server.on_accept)

            def data_received(self, data: bytes) -> None:
                self.buffer += data
                while b"\r\n\r\n" in self.buffer:
                    _head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                    self.buffer = self.buffer[2:]  # the body: "{}"
                    server.requests.append(self.index)
                    server.connections[self.index].write(server.answer)

            def connection_lost(self, exc: Exception | None) -> None:
                server.closed.append(self.index)

        return Handler()


@contextlib.asynccontextmanager
async def raw_server(on_accept: bytes = b"", answer: bytes = b"") -> AsyncIterator[RawServer]:
    srv = RawServer(on_accept, answer)
    server = await asyncio.get_running_loop().create_server(srv.protocol, "127.0.0.1", 0)
    srv.port = server.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        server.close()
        for transport in srv.connections:
            transport.abort()
        await server.wait_closed()


async def test_a_response_sent_before_the_request_is_a_connection_error(
    make_transport: MakeTransport,
) -> None:
    """The server writes a 200 as soon as it accepts: it answers no request of ours."""
    early = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    async with raw_server(on_accept=early) as srv:
        transport = make_transport()
        outcome = await transport.send(_request(f"http://127.0.0.1:{srv.port}/hook"))
    assert _is_connection_error(outcome), outcome
    assert outcome.error is not None
    assert "before the request" in outcome.error


async def test_an_idle_connection_that_received_bytes_is_not_reused(
    make_transport: MakeTransport,
) -> None:
    """Bytes on an idle kept-alive connection (here a 200 nobody asked for) are no answer
    to the next request, even when they wait unread when it is sent: that connection is
    dropped and the request goes on a new one."""
    async with raw_server(answer=_response("204 No Content")) as srv:
        transport = make_transport()
        url = f"http://127.0.0.1:{srv.port}/hook"
        assert (await transport.send(_request(url))).status == 204
        # The unsolicited bytes reach the client's socket; send() starts before the loop
        # reads them (no await in between).
        srv.connections[0].write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        outcome = await transport.send(_request(url))
        await wait_until(lambda: 0 in srv.closed, QUICK, "the client closes connection 0")
    assert outcome.status == 204, outcome
    assert srv.requests == [0, 1]


async def test_a_connection_handed_to_a_waiting_request_is_checked_for_bytes_too(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport
) -> None:
    """With one connection per host, a request waiting for it gets it handed over when
    the previous response ends. Bytes the server sends in between (unread when the
    waiting request starts) must not answer it either."""
    async with raw_server(answer=_response("204 No Content")) as srv:
        transport = make_transport(per_host=1)
        url = f"http://127.0.0.1:{srv.port}/hook"
        hand_over = HostPool.release

        def release_after_unsolicited_bytes(pool: HostPool, conn: Connection, now: float) -> None:
            if len(srv.requests) == 1:  # the first response is complete: bytes come now
                srv.connections[0].write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            hand_over(pool, conn, now)

        monkeypatch.setattr(HostPool, "release", release_after_unsolicited_bytes)
        srv.answer = b""  # the first request waits for its answer
        first = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: srv.requests == [0], QUICK, "the first request sent")
        second = asyncio.ensure_future(transport.send(_request(url)))
        await wait_until(lambda: _waiting_for_a_slot(transport, url) == 1, QUICK, "one waits")
        srv.answer = _response("204 No Content")
        srv.connections[0].write(srv.answer)
        outcomes = await asyncio.wait_for(asyncio.gather(first, second), QUICK)
    assert [o.status for o in outcomes] == [204, 204], outcomes
    assert srv.requests == [0, 1]


# --- internationalized host names: IDNA 2008 -----------------------------------------------------
@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
async def test_an_internationalized_host_goes_out_in_its_idna_2008_form(
    monkeypatch: pytest.MonkeyPatch, make_transport: MakeTransport, guard: bool
) -> None:
    """``faß.example`` is ``xn--fa-hia.example`` (IDNA 2008, as aiohttp/yarl and browsers),
    not IDNA 2003's ``fass.example`` (another domain): in DNS and in ``Host``."""
    _loopback_is_public(monkeypatch)
    asked: list[str] = []
    transport = make_transport(
        allow_private_destinations=not guard, resolve=resolving_to(["127.0.0.1"], asked)
    )
    async with scripted_server() as srv:
        outcome = await transport.send(_request(f"http://faß.example:{srv.port}/hook"))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert asked == ["xn--fa-hia.example"]
    assert [got.header("Host") for got in srv.requests] == [f"xn--fa-hia.example:{srv.port}"]


async def test_a_host_idna_2008_refuses_is_a_connection_error(
    make_transport: MakeTransport,
) -> None:
    asked: list[str] = []
    transport = make_transport(resolve=resolving_to(["127.0.0.1"], asked))
    outcome = await transport.send(_request("http://\U0001f4a9.example:9/hook"))
    assert _is_connection_error(outcome), outcome
    assert asked == []  # never resolved (IDNA 2003 would have made it xn--ls8h.example)
