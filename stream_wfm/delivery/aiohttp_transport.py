"""The aiohttp transport (the reference implementation of :class:`Transport`)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from stream_wfm.delivery.destinations import (
    Resolve,
    is_ip_literal,
    literal_refusal,
    resolution_refusal,
)
from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    DeliveryTimeoutError,
    DestinationRefusedError,
)
from stream_wfm.delivery.outcome import Outcome, classify_status, outcome_for_error
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response

_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class FunctionResolver(AbstractResolver):
    """A :data:`~stream_wfm.delivery.destinations.Resolve` function (``resolve(host,
    port)`` → addresses) as an aiohttp resolver."""

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = []
        for address in await self._resolve(host, port):
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, found):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=address,
                        port=port,
                        family=found,
                        proto=0,
                        flags=_NUMERIC_FLAGS,
                    )
                )
        return results

    async def close(self) -> None:
        return None


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (default: aiohttp's), then refuses the host unless every
    address is public (:func:`~stream_wfm.delivery.destinations.resolution_refusal`).

    The check runs on the resolved IPs, so a public name pointing at
    127.0.0.1 or 10.0.0.0/8 is refused too: :class:`DestinationRefusedError`,
    which aiohttp passes through to the caller (it wraps only ``OSError``).
    aiohttp then connects to exactly the addresses checked here (and keeps them
    in its DNS cache for ``ttl_dns_cache`` seconds).
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        refusal = resolution_refusal(host, [result["host"] for result in results])
        if refusal is not None:
            raise DestinationRefusedError(refusal)
        return results

    async def close(self) -> None:
        await self._inner.close()


def host_refusal(host: str) -> str | None:
    """The guard's answer for a host aiohttp connects to without asking its resolver.

    An IP literal is judged as it is. A host aiohttp *takes* for an address (digits and
    dots, or a colon) that is not one in canonical form — ``127.1``, ``2130706433``,
    ``127.000.000.001`` — is refused: aiohttp would skip the resolver (older versions
    then let ``getaddrinfo`` read it as 127.0.0.1). None for a name: the
    :class:`GuardedResolver` checks what it resolves to.
    """
    if is_ip_literal(host):
        return literal_refusal(host)
    if ":" in host or host.replace(".", "").isdigit():
        return f"{host} is not an IP address in canonical form"
    return None


# Response bodies are read up to this size so the connection can be reused;
# a larger body closes the connection instead.
DRAIN_LIMIT = 64 * 1024
# Hosts whose literal check is remembered (a bound, not a working-set size).
_HOSTS_CHECKED_SIZE = 4096


async def _read_bounded(resp: aiohttp.ClientResponse, preview: int) -> bytes:
    kept = bytearray()
    total = 0
    while total < DRAIN_LIMIT:
        chunk = await resp.content.read(DRAIN_LIMIT - total)
        if not chunk:
            break
        total += len(chunk)
        if len(kept) < preview:
            kept += chunk[: preview - len(kept)]
    return bytes(kept)


class AiohttpTransport:
    """Webhook delivery over a shared :class:`aiohttp.ClientSession`."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_in_flight_per_host: int,
        allow_private_destinations: bool,
        resolve: Resolve | None = None,
    ) -> None:
        """``resolve``: how host names are resolved (default: aiohttp's resolver)."""
        self._allow_private = allow_private_destinations
        self._max_in_flight = max_in_flight
        self._per_host = max_in_flight_per_host
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None
        self._hosts_checked: dict[str, str | None] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver: AbstractResolver | None = None
            if self._resolve is not None:
                resolver = FunctionResolver(self._resolve)
            if not self._allow_private:
                resolver = GuardedResolver(resolver)
            self._resolver = resolver
            connector = aiohttp.TCPConnector(
                limit=self._max_in_flight,
                limit_per_host=self._per_host,
                resolver=resolver,
                ttl_dns_cache=60,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type", "Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    def _refused(self, url: URL) -> str | None:
        """The guard's answer for what aiohttp will not resolve (see :func:`host_refusal`);
        names are checked by the :class:`GuardedResolver`."""
        if self._allow_private:
            return None
        host = url.raw_host or ""
        checked = self._hosts_checked
        if host not in checked:
            if len(checked) >= _HOSTS_CHECKED_SIZE:
                checked.clear()
            checked[host] = host_refusal(host)
        return checked[host]

    async def send(self, request: WebhookRequest) -> Outcome:
        outcome, _body = await self._send(request, 0)
        return outcome

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        start = time.perf_counter()
        outcome, body = await self._send(request, preview)
        return Response(outcome, time.perf_counter() - start, body)

    async def _send(self, request: WebhookRequest, preview: int) -> tuple[Outcome, bytes]:
        url = URL(request.url, encoded=True)
        refusal = self._refused(url)
        if refusal is not None:
            return outcome_for_error(DestinationRefusedError(refusal)), b""
        session = self._get_session()
        headers = request.headers
        if request.signed:  # signed now, as it is sent (docs/contract.md §11)
            headers += request.signature_headers()
        kwargs: dict[str, Any] = {
            "headers": headers,
            "allow_redirects": False,
            "timeout": self._timeout(request.timeout),
        }
        if request.body:
            kwargs["data"] = request.body
        try:
            async with session.request(request.method, url, **kwargs) as resp:
                body = await _read_bounded(resp, preview)
                outcome = classify_status(resp.status, resp.headers.get("Retry-After"), time.time())
                return outcome, body
        except TimeoutError:
            return outcome_for_error(DeliveryTimeoutError(request.timeout)), b""
        except DestinationRefusedError as exc:  # from GuardedResolver
            return outcome_for_error(exc), b""
        except (aiohttp.ClientError, OSError) as exc:
            return outcome_for_error(ConnectionFailedError(cause=exc)), b""

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
            await asyncio.sleep(0)
        if resolver is not None:  # the connector closes only a resolver it made
            await resolver.close()
