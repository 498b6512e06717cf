"""The raw POST loop baseline: one HTTP client library, keep-alive, C concurrent workers.

Runs in its own process (``python -m stream_wfm.bench.rawpost ARGS``) on uvloop
when installed, posts the same kind of request the service sends (a ~430-byte
JSON body or a URL-encoded query, the same headers) as fast as it can for a
warm-up and then a measured window, and prints one JSON line:
``{"requests", "seconds", "requests_per_second", "cpu_us_per_request", "errors"}``.
CPU is this process's user + system time (every thread) over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from stream_wfm.bench.workload import sample_request_parts
from stream_wfm.delivery.transport_factory import TRANSPORT_NAMES

#: One raw loop per shipped transport, named as STREAM_WFM_HTTP_TRANSPORT names them.
CLIENTS = TRANSPORT_NAMES

Post = Callable[[int], Awaitable[bool]]


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _aiohttp_client(
    url: str, headers: list[tuple[str, str]], body: bytes, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Content-Type", "Accept", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    timeout = aiohttp.ClientTimeout(total=10)

    async def post(n: int) -> bool:
        hdrs = [*headers, ("X-WFM-Event-Id", f"raw-{n}")]
        async with session.post(
            url, data=body or None, headers=hdrs, allow_redirects=False, timeout=timeout
        ) as resp:
            await resp.read()
            return 200 <= resp.status < 300

    return post, session.close


async def _pyreqwest_client(
    url: str, headers: list[tuple[str, str]], body: bytes, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .max_connections(concurrency)
        .follow_redirects(False)
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .timeout(timedelta(seconds=10))
        .build()
    )

    async def post(n: int) -> bool:
        builder = client.post(url).headers([*headers, ("X-WFM-Event-Id", f"raw-{n}")])
        if body:
            builder = builder.body_bytes(body)
        resp = await builder.build().send()
        return 200 <= resp.status < 300

    return post, client.close


async def _h1_client(
    url: str, headers: list[tuple[str, str]], body: bytes, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """stream-wfm's own HTTP/1.1 client: the h1 transport is the library here."""
    from stream_wfm.delivery.h1_transport import H1Transport
    from stream_wfm.delivery.outcome import OutcomeKind
    from stream_wfm.delivery.request import WebhookRequest, host_key_of

    transport = H1Transport(
        max_in_flight=concurrency, max_in_flight_per_host=concurrency,
        allow_private_destinations=True,
    )  # fmt: skip
    fixed = tuple(headers)
    host_key = host_key_of(url)

    async def post(n: int) -> bool:
        event_id = f"raw-{n}"
        request = WebhookRequest(
            "POST", url, (*fixed, ("X-WFM-Event-Id", event_id)), body, 10.0, host_key, event_id
        )
        outcome = await transport.send(request)
        return outcome.kind is OutcomeKind.DELIVERED

    return post, transport.close


async def run(
    client: str, url: str, concurrency: int, warmup: float, duration: float, fmt: str
) -> dict[str, Any]:
    full_url, headers, body = sample_request_parts(url, fmt)
    make = {"aiohttp": _aiohttp_client, "pyreqwest": _pyreqwest_client, "h1": _h1_client}[client]
    post, close = await make(full_url, headers, body, concurrency)
    done = 0
    errors = 0
    stop = False
    counter = iter(range(1 << 62))

    async def worker() -> None:
        nonlocal done, errors
        while not stop:
            try:
                ok = await post(next(counter))
            except Exception:
                ok = False
            done += 1
            if not ok:
                errors += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    n0, c0, t0 = done, process_cpu_seconds(), time.perf_counter()
    await asyncio.sleep(duration)
    n1, c1, t1 = done, process_cpu_seconds(), time.perf_counter()
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await close()
    requests = n1 - n0
    seconds = t1 - t0
    return {
        "client": client,
        "requests": requests,
        "seconds": seconds,
        "requests_per_second": requests / seconds if seconds > 0 else 0.0,
        "cpu_us_per_request": (c1 - c0) * 1e6 / requests if requests else 0.0,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stream_wfm.bench.rawpost")
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--format", choices=("json", "urlencoded"), default="json")
    args = parser.parse_args()
    coro = run(args.client, args.url, args.concurrency, args.warmup, args.duration, args.format)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
