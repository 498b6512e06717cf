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

from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    DeliveryTimeoutError,
    DestinationRefusedError,
)
from stream_wfm.delivery.guard import address_refusal
from stream_wfm.delivery.outcome import Outcome, classify_status, outcome_for_error
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Response


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then refuses non-public addresses.

    The check runs on the resolved IPs, so a public name pointing at
    127.0.0.1 or 10.0.0.0/8 is refused too: :class:`DestinationRefusedError`,
    which aiohttp passes through to the caller (it wraps only ``OSError``).
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = address_refusal(result["host"])
            if refusal is not None:
                raise DestinationRefusedError(f"{host} resolves to a {refusal} address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _literal_refusal(url: URL) -> str | None:
    """Refusal for an IP-literal host (aiohttp does not resolve those)."""
    host = url.raw_host or ""
    try:
        refusal = address_refusal(host.strip("[]"))
    except ValueError:
        return None  # a name: the resolver checks it
    return None if refusal is None else f"{host} is a {refusal} address"


# Response bodies are read up to this size so the connection can be reused;
# a larger body closes the connection instead.
DRAIN_LIMIT = 64 * 1024


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
    ) -> None:
        self._allow_private = allow_private_destinations
        self._max_in_flight = max_in_flight
        self._per_host = max_in_flight_per_host
        self._session: aiohttp.ClientSession | None = None
        self._literal_checked: dict[str, str | None] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_in_flight,
                limit_per_host=self._per_host,
                resolver=None if self._allow_private else GuardedResolver(),
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

    def _refused(self, request: WebhookRequest) -> str | None:
        if self._allow_private:
            return None
        key = request.host_key
        if key not in self._literal_checked:
            self._literal_checked[key] = _literal_refusal(URL(request.url))
        return self._literal_checked[key]

    async def send(self, request: WebhookRequest) -> Outcome:
        outcome, _body = await self._send(request, 0)
        return outcome

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        start = time.perf_counter()
        outcome, body = await self._send(request, preview)
        return Response(outcome, time.perf_counter() - start, body)

    async def _send(self, request: WebhookRequest, preview: int) -> tuple[Outcome, bytes]:
        refusal = self._refused(request)
        if refusal is not None:
            return outcome_for_error(DestinationRefusedError(refusal)), b""
        session = self._get_session()
        kwargs: dict[str, Any] = {
            "headers": request.headers,
            "allow_redirects": False,
            "timeout": self._timeout(request.timeout),
        }
        if request.body:
            kwargs["data"] = request.body
        try:
            async with session.request(
                request.method, URL(request.url, encoded=True), **kwargs
            ) as resp:
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
        if session is not None:
            await session.close()
            await asyncio.sleep(0)
