"""The h1 transport: HTTP/1.1 written on the event loop itself, responses parsed by llhttp.

Why it exists: profiles of ``stream-wfm run`` with pyreqwest showed the
service throughput flat from 16 to 256 requests in flight, with pyreqwest's
single Tokio thread spending its off-CPU time waiting for the GIL (every
response completion needs it) while the loop thread ran the pipeline: the
two threads took turns instead of overlapping. aiohttp has no second thread
but costs ~75 µs of Python per request. This transport does only what a
webhook needs, on the loop thread, with the parsing in C (``httptools``, the
binding of Node.js's llhttp that uvicorn uses): ~10 µs per request in the raw
loop, no thread hand-offs. See docs/performance.md.
Connections and response parsing are in :mod:`stream_wfm.delivery.h1_connection`.

Contract (the same tests run against every transport):

* **Connections**: a keep-alive pool per destination host (``scheme://host:port``)
  of at most ``max_in_flight_per_host`` connections, one request at a time on
  each (no pipelining). Idle connections are closed after
  :data:`IDLE_TIMEOUT_SECONDS`; a connection is reused only after a complete
  response that allows keep-alive. At most ``max_in_flight`` connections are
  open over all hosts (as aiohttp's connector ``limit``): opening one more
  first closes the longest-idle connection, so many destination hosts cannot
  use up file descriptors. Requests in flight are bounded by the dispatcher.
* **Requests** go out exactly as built: header names keep their case, in
  order, after ``Host``; ``Content-Length`` always (``0`` for an empty body).
  A header that would contain CR or LF is refused (config validation already
  prevents it). Non-ASCII in the URL path is percent-encoded as UTF-8.
* **No redirects** (a 3xx is the outcome), no proxies, no cookies, no
  decompression (no ``Accept-Encoding`` is sent).
* **TLS verified** (:func:`ssl.create_default_context`: certificate chain and
  host name), SNI set to the URL's host. Host names go to DNS, ``Host`` and SNI in one
  ASCII form (:func:`~stream_wfm.hostnames.ascii_host`: IDNA 2008 with UTS #46, as
  aiohttp); a name with none is a connection error.
* **Timeouts**: the request's ``timeout`` covers everything: resolving,
  waiting for a connection slot, connecting, TLS, sending and the response.
* **Responses**: ``Content-Length``, chunked and close-delimited bodies; 1xx
  informational responses before the final one are skipped; bodies are read
  up to :data:`DRAIN_LIMIT` bytes, beyond it the connection is closed. A
  malformed response, a status line and headers over :data:`MAX_HEAD_BYTES`,
  bytes that come with no request outstanding, or a connection closed before
  the response is complete, is a connection error (and the connection is
  closed). Bytes that arrive before the request is written answer nothing: on a new
  connection they are a connection error, an idle one that got any is not reused
  (checked by peeking at the socket, so also for bytes the loop has not read yet;
  over TLS, for a new connection, only those the loop has read).
* **Addresses**: a name is resolved here, with the loop's ``getaddrinfo`` (or the
  resolver given), again every :data:`DNS_TTL_SECONDS`; when its addresses change,
  connections to the old ones retire. Connections go only to those addresses
  (``Host`` and SNI keep the name), tried in order with IPv6 and IPv4 interleaved,
  the next one started when the previous attempt failed or has not connected within
  :data:`CONNECTION_ATTEMPT_DELAY_SECONDS` (Happy Eyeballs, RFC 8305); the address that
  connected is tried first next time.
* **Destination guard** (``allow_private_destinations=False``): the host is refused
  when any of its addresses is not public
  (:func:`~stream_wfm.delivery.guard.address_refusal`); the addresses connected to are
  exactly those checked.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohappyeyeballs import start_connection

from stream_wfm.delivery.destinations import (
    Resolve,
    is_ip_literal,
    literal_refusal,
    resolution_refusal,
    split_host_key,
    system_resolve,
)
from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    DestinationRefusedError,
    NoResponseError,
    ProtocolError,
)
from stream_wfm.delivery.h1_connection import (
    IDLE_TIMEOUT_SECONDS,
    Connection,
    HostPool,
    no_response,
)
from stream_wfm.delivery.h1_wire import HeaderBlocks, encode_request
from stream_wfm.delivery.outcome import Outcome, outcome_for_error
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response

__all__ = ["DNS_TTL_SECONDS", "H1Transport"]

#: How long a checked resolution is trusted (as aiohttp's ``ttl_dns_cache``).
DNS_TTL_SECONDS: Final = 60.0
#: How often idle connections and unused hosts are swept.
SWEEP_INTERVAL_SECONDS: Final = 5.0
#: How often the deadlines of requests under way are checked: a timeout ends at most
#: this much after the request's ``timeout`` (1 s or more).
DEADLINE_TICK_SECONDS: Final = 0.05
#: RFC 8305's Connection Attempt Delay: with several addresses, the next is tried when
#: the previous attempt has neither connected nor failed within this.
CONNECTION_ATTEMPT_DELAY_SECONDS: Final = 0.25


class H1Transport:
    """Webhook delivery over HTTP/1.1 on the event loop; see the module docstring."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_in_flight_per_host: int,
        allow_private_destinations: bool,
        resolve: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._per_host = max_in_flight_per_host
        self._allow_private = allow_private_destinations
        self._resolve = resolve or system_resolve
        self._clock = clock
        self._pools: dict[str, HostPool] = {}
        self._ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        # Requests under way, by connection: one ticker checks their deadlines (cheaper
        # than a timer per request, which costs more than the rest of the request's Python).
        self._busy: set[Connection] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self._header_blocks = HeaderBlocks()
        self._closed = False

    # --- sending ---------------------------------------------------------------------------
    def send(self, request: WebhookRequest) -> Awaitable[Outcome]:
        """The request's outcome. With an idle connection to its (checked) host, the
        hot path: a future the connection completes, no coroutine."""
        pool = self._pools.get(request.host_key)
        if pool is not None and pool.refusal is None and not self._closed:
            now = self._clock()
            if pool.expires > now:
                conn = pool.take_idle(now)
                if conn is not None:
                    deadline = conn.loop.time() + request.timeout
                    return self._exchange(pool, conn, request, now, deadline, 0, None)
        return self._send(request, 0, None)

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        start = time.perf_counter()
        body: list[bytes] = []
        outcome = await self._send(request, preview, body)
        return Response(outcome, time.perf_counter() - start, body[0] if body else b"")

    async def _send(
        self, request: WebhookRequest, preview: int, body_out: list[bytes] | None
    ) -> Outcome:
        """Deliver ``request``; with ``body_out``, append the body's first ``preview`` bytes."""
        if self._closed:
            closed = ConnectionError("transport closed")
            return outcome_for_error(ConnectionFailedError(cause=closed))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout
        now = self._clock()
        pool = self._pools.get(request.host_key)
        conn = None
        if pool is not None and pool.expires > now and pool.refusal is None:
            conn = pool.take_idle(now)
        if conn is None:
            try:
                async with asyncio.timeout_at(deadline):
                    pool = await self._checked_pool(request.host_key, now)
                    if pool.refusal is not None:
                        return outcome_for_error(DestinationRefusedError(pool.refusal))
                    conn = await self._acquire(pool, loop, now)
            except (OSError, ValueError, NoResponseError) as exc:
                # OSError: the deadline (TimeoutError), resolution, refused, reset, TLS
                # (ssl.SSLError). ValueError: a name with no ASCII form (e.g. a label over
                # 63 characters). NoResponseError: the server spoke before the request.
                return outcome_for_error(no_response(exc, request.timeout))
        assert pool is not None
        exchange = self._exchange(pool, conn, request, now, deadline, preview, body_out)
        try:
            return await exchange
        except asyncio.CancelledError:
            conn.cancel()  # the response may still come, so not reusable
            raise

    def _exchange(
        self,
        pool: HostPool,
        conn: Connection,
        request: WebhookRequest,
        now: float,
        deadline: float,
        preview: int,
        body_out: list[bytes] | None,
    ) -> asyncio.Future[Outcome]:
        """Write ``request`` on ``conn``: the future its outcome, which the connection
        completes (see :meth:`Connection.start`)."""
        pool.last_used = now
        try:
            data = encode_request(request, pool.host_header, self._header_blocks, pool.lines)
            exchange = conn.start(data, deadline, request.timeout, preview, body_out)
        except (OSError, NoResponseError) as exc:
            # NoResponseError: the request is not encodable.
            pool.discard(conn)
            failed: asyncio.Future[Outcome] = conn.loop.create_future()
            failed.set_result(outcome_for_error(no_response(exc, request.timeout)))
            return failed
        if self._ticker is None:
            loop = conn.loop
            self._ticker = loop.call_later(DEADLINE_TICK_SECONDS, self._check_deadlines, loop)
        return exchange

    def _check_deadlines(self, loop: asyncio.AbstractEventLoop) -> None:
        """Expire the requests whose deadline passed, close the connections of those whose
        sender gave up; runs while any is under way."""
        self._ticker = None
        now = loop.time()
        for conn in list(self._busy):
            waiter = conn.waiter
            if waiter is not None and waiter.cancelled():
                conn.cancel()  # e.g. a sender's task cancelled while it awaited the future
            elif conn.deadline <= now:
                conn.expire()
        if self._busy and not self._closed:
            self._ticker = loop.call_later(DEADLINE_TICK_SECONDS, self._check_deadlines, loop)

    # --- connections -----------------------------------------------------------------------
    async def _acquire(
        self, pool: HostPool, loop: asyncio.AbstractEventLoop, now: float
    ) -> Connection:
        """An open connection to ``pool``'s host: idle, new, or handed over when one frees."""
        conn = pool.take_idle(now)
        if conn is not None:
            return conn
        if pool.open >= self._per_host:
            waiter: asyncio.Future[Connection | None] = loop.create_future()
            pool.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._give_back(pool, waiter.result())
                else:
                    pool.waiters.remove(waiter)
                raise
            if handed is not None and not handed.closed and not handed.unread():
                return handed
            if handed is not None:
                handed.abort()  # bytes since its response: no longer HTTP; its slot is ours
            # A slot is ours (pool.open already counts it): connect below.
        else:
            pool.open += 1
        self._evict_idle()
        try:
            return await self._connect(pool, loop)
        except BaseException:
            pool.free_slot()  # the next waiter, if any, tries with it
            raise

    def _evict_idle(self) -> None:
        """Before a new connection: close the longest-idle ones while more than
        ``max_in_flight`` are open over all hosts (the new one already counted)."""
        pools = self._pools.values()
        excess = sum(pool.open for pool in pools) - self._max_in_flight
        while excess > 0:
            idle = [(c.idle_since, id(c), c, p) for p in pools for c in p.idle]
            if not idle:
                return  # every open connection is busy: the dispatcher bounds those
            _since, _id, oldest, pool = min(idle)
            pool.idle.remove(oldest)
            pool.discard(oldest)
            excess -= 1

    def _give_back(self, pool: HostPool, handed: Connection | None) -> None:
        """A waiter was cancelled after being handed a connection or a slot: pass it on."""
        if handed is not None:
            pool.release(handed, self._clock())
        else:
            pool.free_slot()

    async def _connect(self, pool: HostPool, loop: asyncio.AbstractEventLoop) -> Connection:
        """A connection to one of the pool's (checked) addresses, tried in order and
        interleaving IPv6 and IPv4, staggered as RFC 8305's Happy Eyeballs."""
        sock = await start_connection(
            pool.addr_infos(), happy_eyeballs_delay=CONNECTION_ATTEMPT_DELAY_SECONDS, interleave=1
        )
        secure = pool.scheme == "https"
        try:
            _transport, conn = await loop.create_connection(
                lambda: Connection(pool, sock, loop),
                sock=sock,
                ssl=self._ssl_context() if secure else None,
                server_hostname=pool.name if secure else None,
            )
        except BaseException:
            sock.close()
            raise
        self._schedule_sweep(loop)
        peer = conn.transport.get_extra_info("peername") if conn.transport else None
        if peer:
            pool.prefer(peer[0])
        # Whatever the server sent already answers no request of ours. (Over TLS, bytes
        # unread may be session tickets; data the loop read has closed the connection.)
        if conn.closed or (not secure and conn.unread()):
            conn.abort()
            raise ProtocolError("the server sent data or closed before the request")
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()  # verifies the chain and the host name
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    # --- destination guard -----------------------------------------------------------------
    async def _checked_pool(self, host_key: str, now: float) -> HostPool:
        """The host's pool, resolving (and checking) the name when new or expired."""
        pool = self._pools.get(host_key)
        if pool is None:
            scheme, host, port = split_host_key(host_key)
            pool = HostPool(scheme, host, port, now, self._busy, self._clock)
            self._pools[host_key] = pool
        if pool.expires > now:
            return pool
        guard = not self._allow_private
        if is_ip_literal(pool.host):
            refusal = literal_refusal(pool.host) if guard else None
            pool.checked([pool.host], refusal, float("inf"))
            return pool
        pool.resolving += 1
        try:
            addresses = await self._resolve(pool.name, pool.port)
        finally:
            pool.resolving -= 1
        if not addresses and not guard:
            raise ConnectionError(f"{pool.host} resolves to no address")
        refusal = resolution_refusal(pool.host, addresses) if guard else None
        pool.checked(addresses, refusal, now + DNS_TTL_SECONDS)
        return pool

    # --- housekeeping ------------------------------------------------------------------------
    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = loop.call_later(SWEEP_INTERVAL_SECONDS, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close connections idle for too long; forget hosts with no connection left."""
        self._sweeper = None
        now = self._clock()
        for key, pool in list(self._pools.items()):
            pool.close_idle(older_than=now - IDLE_TIMEOUT_SECONDS)
            if (
                pool.open == 0
                and not pool.waiters
                and not pool.resolving
                and now - pool.last_used > DNS_TTL_SECONDS
            ):
                del self._pools[key]
        if any(pool.open for pool in self._pools.values()):
            self._schedule_sweep(loop)

    async def close(self) -> None:
        """Close every connection; safe to call twice. Later sends fail as connection errors."""
        self._closed = True
        for handle in (self._sweeper, self._ticker):
            if handle is not None:
                handle.cancel()
        self._sweeper = self._ticker = None
        for conn in list(self._busy):
            conn.abort()  # their senders see a connection error
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            for waiter in pool.waiters:  # first, so that no freed slot goes to one of them
                if not waiter.done():
                    waiter.set_exception(ConnectionError("transport closed"))
            pool.waiters.clear()
            pool.close_idle()
