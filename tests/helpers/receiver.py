"""A real webhook receiver on 127.0.0.1 that records every request and answers as scripted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP receiver that records every request; :meth:`start` serves it on
    ``host`` (any free port), :meth:`close` stops it."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    # Called per request; returns (status, headers) — default 200.
    respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda _r: (200, {})
    delay: float = 0.0
    # When set and not open, requests wait for it before being answered (and recorded).
    gate: asyncio.Event | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = self._runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(
            request.method,
            request.path,
            request.query_string,
            dict(request.headers),
            body,
            time.time(),
        )
        if self.delay:
            await asyncio.sleep(self.delay)  # simulates a slow endpoint, not synchronisation
        if self.gate is not None:
            await self.gate.wait()
        status, headers = self.respond(rec)
        self.requests.append(rec)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=status, headers=headers, text="ok")

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: predicate(self.requests)), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"receiver condition not met within {timeout}s; got {len(self.requests)} "
                    f"requests: {[r.path + '?' + r.query for r in self.requests[-5:]]}"
                ) from None
        return self.requests

    async def wait_count(self, n: int, timeout: float = 20.0) -> list[Received]:
        return await self.wait_for(lambda reqs: len(reqs) >= n, timeout)
