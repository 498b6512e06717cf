"""The pyreqwest transport: webhook delivery over Rust's reqwest/hyper (PyPI ``pyreqwest``).

Same contract as :class:`~stream_wfm.delivery.aiohttp_transport.AiohttpTransport`
(the contract tests run against both), at about half the CPU per request.

* **One client per destination host** (``scheme://host:port``), each limited
  to ``max_in_flight_per_host`` requests in flight (pyreqwest's
  ``max_connections``), so a hanging host fills its own slots only. Clients
  share pyreqwest's single Tokio runtime thread. The overall limit is the
  dispatcher's (``max_in_flight``).
* **No redirects** (``follow_redirects(False)``: a 3xx is the outcome), **TLS
  verified** (reqwest's default, never disabled), no proxies from the
  environment (as aiohttp with ``trust_env=False``), no automatic
  decompression, no cookies, no ``Referer``.
* **Timeouts**: the request's ``timeout`` is reqwest's total per-request
  timeout (connect, send, response and body).
* **Response bodies** are read up to :data:`DRAIN_LIMIT` bytes; a larger body
  closes the connection instead of being buffered.
* **Destination guard** (``allow_private_destinations=False``): pyreqwest has
  no resolver hook, so the transport resolves the host itself with the loop's
  ``getaddrinfo``, refuses the destination when any address is not public
  (:func:`~stream_wfm.delivery.guard.address_refusal`), and pins the host's
  client to the checked address with reqwest's static resolve override
  (``ClientBuilder.resolve``): the connection goes to exactly the address that
  was checked, while the URL, and so ``Host`` and TLS SNI and certificate
  verification, keep the name. The check is redone every
  :data:`DNS_TTL_SECONDS`; a changed address gets a new pinned client. An
  IP-literal host is checked as it is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import PyreqwestError, RequestTimeoutError
from pyreqwest.request import RequestBuilder

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
    DeliveryTimeoutError,
    DestinationRefusedError,
    NoResponseError,
)
from stream_wfm.delivery.outcome import Outcome, classify_status, outcome_for_error
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response

__all__ = ["DNS_TTL_SECONDS", "DRAIN_LIMIT", "PyreqwestTransport"]

#: Response bodies are read up to this size so the connection can be reused.
DRAIN_LIMIT: Final = 64 * 1024
#: How long a checked resolution is trusted (aiohttp's ``ttl_dns_cache`` is the same).
DNS_TTL_SECONDS: Final = 60.0


def _no_response(exc: PyreqwestError, timeout: float) -> NoResponseError:
    """What a pyreqwest error means: every one of its timeouts (connect, read, pool...) is
    the request's ``timeout``; anything else, a connection failure."""
    if isinstance(exc, RequestTimeoutError):
        return DeliveryTimeoutError(timeout)
    return ConnectionFailedError(cause=exc)


class _Host:
    """One destination host: its client, or why it is refused."""

    __slots__ = ("address", "client", "expires", "refusal")

    def __init__(
        self, client: Client | None, address: str | None, expires: float, refusal: str | None
    ) -> None:
        self.client = client
        self.address = address
        self.expires = expires
        self.refusal = refusal


class PyreqwestTransport:
    """Webhook delivery with pyreqwest; see the module docstring."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_in_flight_per_host: int,
        allow_private_destinations: bool,
        resolve: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        del max_in_flight  # the dispatcher bounds requests overall; clients are per host
        self._per_host = max_in_flight_per_host
        self._allow_private = allow_private_destinations
        self._resolve = resolve or system_resolve
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._retired: list[Client] = []
        self._timeouts: dict[float, timedelta] = {}
        self._closed = False

    # --- clients ---------------------------------------------------------------------------
    def _build(self, pin: tuple[str, str, int] | None) -> Client:
        builder = (
            ClientBuilder()
            .max_connections(self._per_host)
            .follow_redirects(False)
            .referer(False)
            .no_proxy()
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .pool_idle_timeout(timedelta(seconds=90))
        )
        if pin is not None:
            builder = builder.resolve(*pin)
        return builder.build()

    async def _host(self, request: WebhookRequest) -> _Host:
        """The host's entry, resolving and checking it when new or expired."""
        key = request.host_key
        entry = self._hosts.get(key)
        if self._allow_private:
            if entry is None:
                entry = self._hosts[key] = _Host(self._build(None), None, float("inf"), None)
            return entry
        now = self._clock()
        if entry is not None and entry.expires > now:
            return entry
        _scheme, host, port = split_host_key(key)
        if is_ip_literal(host):
            reason = literal_refusal(host)
            if entry is None:
                client = None if reason is not None else self._build(None)
                entry = self._hosts[key] = _Host(client, host, float("inf"), reason)
            return entry
        addresses = await self._resolve(host, port)
        fresh = self._check(host, addresses, now)
        if fresh.refusal is None and entry is not None and entry.address == fresh.address:
            entry.expires = fresh.expires  # same checked address: keep the pooled connections
            entry.refusal = None
            return entry
        if fresh.refusal is None:
            assert fresh.address is not None
            fresh.client = self._build((host, fresh.address, port))
        if entry is not None and entry.client is not None:
            self._retired.append(entry.client)  # closed with the transport
        self._hosts[key] = fresh
        return fresh

    def _check(self, host: str, addresses: Sequence[str], now: float) -> _Host:
        expires = now + DNS_TTL_SECONDS
        refusal = resolution_refusal(host, addresses)
        if refusal is not None:
            return _Host(None, None, expires, refusal)
        return _Host(None, addresses[0], expires, None)

    def _timeout(self, seconds: float) -> timedelta:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = timedelta(seconds=seconds)
        return timeout

    # --- sending ---------------------------------------------------------------------------
    async def send(self, request: WebhookRequest) -> Outcome:
        """The hot path: :meth:`_send` without the body preview, inlined (one coroutine)."""
        entry = self._hosts.get(request.host_key)
        if entry is None or entry.expires <= self._clock() or self._closed:
            outcome, _body = await self._send(request, 0)
            return outcome
        client = entry.client
        if client is None:
            return outcome_for_error(DestinationRefusedError(entry.refusal or "refused"))
        builder = self._builder(client, request)
        try:
            async with builder.build_streamed() as resp:
                status = resp.status
                if resp.get_header("Content-Length") != "0":
                    await self._read_bounded(resp.body_reader, 0)
                if 200 <= status < 300:
                    return classify_status(status)
                retry_after = resp.get_header("Retry-After")
        except PyreqwestError as exc:
            return outcome_for_error(_no_response(exc, request.timeout))
        return classify_status(status, retry_after)

    def _builder(self, client: Client, request: WebhookRequest) -> RequestBuilder:
        """The request builder for ``request`` on ``client`` (headers, timeout, body)."""
        builder = (
            client.request(request.method, request.url)
            .headers(request.headers)
            .timeout(self._timeout(request.timeout))
        )
        if request.body:
            builder = builder.body_bytes(request.body)
        return builder

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        start = time.perf_counter()
        outcome, body = await self._send(request, preview)
        return Response(outcome, time.perf_counter() - start, body)

    async def _send(self, request: WebhookRequest, preview: int) -> tuple[Outcome, bytes]:
        if self._closed:
            closed = RuntimeError("transport closed")
            return outcome_for_error(ConnectionFailedError(cause=closed)), b""
        entry = self._hosts.get(request.host_key)
        if entry is None or entry.expires <= self._clock():
            try:
                entry = await self._host(request)
            except OSError as exc:  # resolution failed
                return outcome_for_error(ConnectionFailedError(cause=exc)), b""
        client = entry.client
        if client is None:
            return outcome_for_error(DestinationRefusedError(entry.refusal or "refused")), b""
        builder = self._builder(client, request)
        try:
            async with builder.build_streamed() as resp:
                status = resp.status
                body = await self._read_bounded(resp.body_reader, preview)
                retry_after = None if 200 <= status < 300 else resp.get_header("Retry-After")
        except PyreqwestError as exc:
            return outcome_for_error(_no_response(exc, request.timeout)), b""
        return classify_status(status, retry_after, time.time()), body

    @staticmethod
    async def _read_bounded(reader: Any, preview: int) -> bytes:
        kept = b""
        total = 0
        while total < DRAIN_LIMIT:
            chunk = await reader.read_chunk()
            if chunk is None:
                break
            total += len(chunk)
            if len(kept) < preview:
                kept += bytes(chunk[: preview - len(kept)])
        return kept

    async def close(self) -> None:
        """Close every client; safe to call twice."""
        self._closed = True
        clients = [h.client for h in self._hosts.values() if h.client is not None]
        clients.extend(self._retired)
        self._hosts.clear()
        self._retired.clear()
        for client in clients:
            with contextlib.suppress(PyreqwestError):
                await client.close()
