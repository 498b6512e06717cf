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
  timeout (connect, send, response and body), over every address tried.
* **Response bodies** are read up to :data:`DRAIN_LIMIT` bytes; a larger body
  closes the connection instead of being buffered.
* **Names are resolved here**, with the loop's ``getaddrinfo`` (or the resolver
  given), in their ASCII form (:func:`~stream_wfm.hostnames.ascii_host`: IDNA 2008),
  which is also the URL's host reqwest gets. Each host's client is pinned to one of the
  addresses with reqwest's static resolve override (``ClientBuilder.resolve``): the
  connection goes to exactly that address, while the URL, and so ``Host`` and TLS SNI
  and certificate verification, keep the name. When connecting to it fails, the
  request goes to the next address, on a client pinned to that one (reqwest's own
  resolver and its Happy Eyeballs are never used). The name is resolved again every
  :data:`DNS_TTL_SECONDS`; other addresses get a new pinned client. A client no longer
  used is closed once its requests under way have ended.
* **Destination guard** (``allow_private_destinations=False``): the destination is
  refused when any address is not public
  (:func:`~stream_wfm.delivery.guard.address_refusal`); an IP-literal host is checked
  as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError, RequestTimeoutError
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
from stream_wfm.hostnames import ascii_host

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


class _Pinned:
    """A client (pinned to one address, or for an IP-literal host) and its requests under
    way: once retired, it is closed when the last of them ends."""

    __slots__ = ("address", "busy", "client", "retired")

    def __init__(self, client: Client, address: str | None) -> None:
        self.client = client
        self.address = address
        self.busy = 0
        self.retired = False


class _Host:
    """One destination host: its addresses and the client in use, or why it is refused."""

    __slots__ = ("addresses", "current", "expires", "name", "port", "refusal", "url")

    def __init__(
        self, name: str, port: int, addresses: tuple[str, ...], expires: float, refusal: str | None
    ) -> None:
        self.name = name  # the ASCII form: resolved, pinned, and in the URL reqwest gets
        self.port = port
        self.addresses = addresses  # to try in turn; () for an IP literal (no pin)
        self.expires = expires
        self.refusal = refusal
        self.current: _Pinned | None = None
        self.url: Callable[[str], str] = str  # the request's URL as reqwest gets it


def _with_host(name: str) -> Callable[[str], str]:
    """The URL with its (internationalized) host replaced by ``name``: reqwest's own
    conversion could differ from ours, and the pin would then match nothing."""

    def url(original: str) -> str:
        scheme, _, rest = original.partition("://")
        end = min([at for at in map(rest.find, "/?#") if at >= 0], default=len(rest))
        _host, colon, port = rest[:end].rpartition(":") if ":" in rest[:end] else ("", "", "")
        return f"{scheme}://{name}{colon}{port}{rest[end:]}"

    return url


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
        self._retired: set[_Pinned] = set()  # retired with requests still under way
        self._closing: set[asyncio.Task[None]] = set()
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

    def _pin(self, entry: _Host, address: str | None) -> None:
        """Use a new client for ``entry``, pinned to ``address``; the previous one retires."""
        pin = None if address is None else (entry.name, address, entry.port)
        previous, entry.current = entry.current, _Pinned(self._build(pin), address)
        self._retire(previous)

    def _retire(self, pinned: _Pinned | None) -> None:
        if pinned is None or pinned.retired:
            return
        pinned.retired = True
        if pinned.busy:
            self._retired.add(pinned)  # closed when its last request ends (_release)
        else:
            self._close_later(pinned.client)

    def _release(self, pinned: _Pinned) -> None:
        """A request on ``pinned`` ended."""
        pinned.busy -= 1
        if pinned.retired and not pinned.busy and pinned in self._retired:
            self._retired.discard(pinned)
            self._close_later(pinned.client)

    def _close_later(self, client: Client) -> None:
        task = asyncio.get_running_loop().create_task(self._close_client(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_client(client: Client) -> None:
        with contextlib.suppress(PyreqwestError):
            await client.close()

    async def _host(self, request: WebhookRequest) -> _Host:
        """The host's entry, resolving (and checking) the name when new or expired.
        Raises OSError (resolution) or ValueError (a name with no ASCII form)."""
        key = request.host_key
        entry = self._hosts.get(key)
        now = self._clock()
        if entry is not None and entry.expires > now:
            return entry
        _scheme, host, port = split_host_key(key)
        name = ascii_host(host)
        guard = not self._allow_private
        if is_ip_literal(host):
            addresses: list[str] = []
            refusal = literal_refusal(host) if guard else None
            expires = float("inf")
        else:
            addresses = await self._resolve(name, port)
            if not addresses and not guard:
                raise ConnectionError(f"{host} resolves to no address")
            refusal = resolution_refusal(host, addresses) if guard else None
            expires = now + DNS_TTL_SECONDS
        if refusal is None and entry is not None and set(addresses) == set(entry.addresses):
            entry.expires = expires  # the same addresses: keep the client and its connections
            entry.refusal = None
            return entry
        fresh = _Host(name, port, () if refusal else tuple(addresses), expires, refusal)
        if refusal is None:
            self._pin(fresh, fresh.addresses[0] if fresh.addresses else None)
            if name != host:
                fresh.url = _with_host(name)
        if entry is not None:
            self._retire(entry.current)
        self._hosts[key] = fresh
        return fresh

    def _next_address(self, entry: _Host, failed: _Pinned) -> None:
        """Connecting with ``failed`` failed: the entry's next address gets a client, and
        requests go there from now on (unless another request moved on already)."""
        if entry.current is failed and not failed.retired and len(entry.addresses) > 1:
            at = entry.addresses.index(failed.address) if failed.address else 0
            self._pin(entry, entry.addresses[(at + 1) % len(entry.addresses)])

    def _timeout(self, seconds: float) -> timedelta:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = timedelta(seconds=seconds)
        return timeout

    def _builder(
        self, client: Client, entry: _Host, request: WebhookRequest, timeout: timedelta
    ) -> RequestBuilder:
        """The request builder for ``request`` on ``client`` (headers, timeout, body); a
        signed request is signed now, as it is sent (docs/contract.md §11)."""
        headers = request.headers
        if request.signed:
            headers += request.signature_headers()
        builder = client.request(request.method, entry.url(request.url)).headers(headers)
        builder = builder.timeout(timeout)
        if request.body:
            builder = builder.body_bytes(request.body)
        return builder

    # --- sending ---------------------------------------------------------------------------
    async def send(self, request: WebhookRequest) -> Outcome:
        outcome, _body = await self._send(request, 0)
        return outcome

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        start = time.perf_counter()
        outcome, body = await self._send(request, preview)
        return Response(outcome, time.perf_counter() - start, body)

    async def _send(self, request: WebhookRequest, preview: int) -> tuple[Outcome, bytes]:
        """Deliver ``request``: the outcome, and the body's first ``preview`` bytes."""
        if self._closed:
            closed = RuntimeError("transport closed")
            return outcome_for_error(ConnectionFailedError(cause=closed)), b""
        entry = self._hosts.get(request.host_key)
        if entry is None or entry.expires <= self._clock():
            try:
                entry = await self._host(request)
            except (OSError, ValueError) as exc:  # resolution, or a name with no ASCII form
                return outcome_for_error(ConnectionFailedError(cause=exc)), b""
        deadline = time.monotonic() + request.timeout
        error: PyreqwestError | None = None
        for attempt in range(max(1, len(entry.addresses))):
            timeout = self._timeout(request.timeout)
            if attempt:  # the next address, in what is left of the request's timeout
                entry = self._hosts.get(request.host_key, entry)  # resolved again meanwhile?
                timeout = timedelta(seconds=max(deadline - time.monotonic(), 0.001))
            pinned = entry.current
            if pinned is None:
                return outcome_for_error(DestinationRefusedError(entry.refusal or "refused")), b""
            pinned.busy += 1
            try:
                async with self._builder(
                    pinned.client, entry, request, timeout
                ).build_streamed() as resp:
                    status = resp.status
                    body = b""
                    if preview or resp.get_header("Content-Length") != "0":
                        body = await self._read_bounded(resp.body_reader, preview)
                    retry_after = None if 200 <= status < 300 else resp.get_header("Retry-After")
                return classify_status(status, retry_after), body
            except ConnectError as exc:  # nothing was sent: the next address may answer
                error = exc
                self._next_address(entry, pinned)
            except PyreqwestError as exc:
                return outcome_for_error(_no_response(exc, request.timeout)), b""
            finally:
                self._release(pinned)
        assert error is not None
        return outcome_for_error(_no_response(error, request.timeout)), b""

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
        pinned = [h.current for h in self._hosts.values() if h.current is not None]
        pinned.extend(self._retired)
        self._hosts.clear()
        self._retired.clear()
        for each in pinned:
            each.retired = True  # no later close for it (_release)
            await self._close_client(each.client)
        if self._closing:
            await asyncio.gather(*self._closing)
