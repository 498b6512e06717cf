"""The demo webhook receiver: a stand-in for the WFM vendors' endpoints.

Used in-process by ``stream-wfm demo`` and on its own by ``stream-wfm receiver``
(the docker-compose stack). Every path is an endpoint; the path decides how it
answers, deterministically:

* ``/flaky/...`` — "fails now and then": the first request of every
  ``fail_every``-th event (chosen by a CRC of its ``X-WFM-Event-Id``) gets
  ``503``; the retry of that event gets ``200``. Requests without the header
  fail when they are the ``fail_every``-th, 2·``fail_every``-th... of the path.
* ``/strict/...`` — "rejects agents it cannot map": ``400`` when the payload
  (JSON body, or the query string of a URL-encoded request) has no
  ``external_agent_id`` (missing, null or empty).
* anything else — ``200``.

``GET /`` answers the counts per endpoint as JSON. Each request is counted per
path, and one sample request per path is kept (a 2xx one when there is one)
with credential headers masked. One log line per request (logger
``stream_wfm.demo.receiver``) names the headers it got, never their values.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web

log = logging.getLogger(__name__)

FLAKY_PREFIX: Final = "/flaky/"
STRICT_PREFIX: Final = "/strict/"
EVENT_ID_HEADER: Final = "X-WFM-Event-Id"
MASK: Final = "********"
#: Headers whose values are credentials: masked in samples.
CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}
)
#: Transport headers left out of samples.
NOISE_HEADERS: Final = frozenset(
    {"host", "content-length", "accept", "accept-encoding", "connection"}
)


@dataclass(frozen=True)
class SampleRequest:
    """One request as received (credential header values masked)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str
    status: int


@dataclass
class EndpointStats:
    """What one path received and answered."""

    requests: int = 0
    delivered: int = 0  # answered 2xx
    unavailable: int = 0  # answered 503
    rejected: int = 0  # answered 400
    retried: int = 0  # events answered 503 first and 2xx later
    sample: SampleRequest | None = None
    failed_once: set[str] = field(default_factory=set, repr=False)  # event ids answered 503
    recovered: set[str] = field(default_factory=set, repr=False)  # ...and 2xx later

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "delivered": self.delivered,
                "unavailable": self.unavailable, "rejected": self.rejected,
                "retried": self.retried}  # fmt: skip


def _masked(name: str, value: str) -> str:
    return MASK if name.lower() in CREDENTIAL_HEADERS else value


def _payload(content_type: str, body: bytes, query: Mapping[str, str]) -> Mapping[str, Any]:
    if content_type == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}
    return query


def _sample(request: web.Request, body: bytes, status: int) -> SampleRequest:
    headers = tuple(
        (name, _masked(name, value))
        for name, value in request.headers.items()
        if name.lower() not in NOISE_HEADERS
    )
    return SampleRequest(
        request.method, str(request.url), headers, body.decode("utf-8", "replace"), status
    )


class DemoReceiver:
    """Counts and answers webhook requests; :meth:`app` is the aiohttp application."""

    def __init__(self, fail_every: int = 4) -> None:
        if fail_every < 2:
            raise ValueError("fail_every must be at least 2")
        self.fail_every = fail_every
        self.endpoints: dict[str, EndpointStats] = {}
        self._runner: web.AppRunner | None = None

    # --- the rules ---------------------------------------------------------------
    def decide(
        self, path: str, stats: EndpointStats, event_id: str | None, payload: Mapping[str, Any]
    ) -> tuple[int, str]:
        """``(status, text)`` for a request to ``path``; ``stats`` already counts it."""
        if path.startswith(FLAKY_PREFIX) and self._flaky_fails(stats, event_id):
            return 503, "temporarily unavailable"
        if path.startswith(STRICT_PREFIX) and not payload.get("external_agent_id"):
            return 400, "unknown agent: external_agent_id is empty"
        return 200, "ok"

    def _flaky_fails(self, stats: EndpointStats, event_id: str | None) -> bool:
        if event_id is None:
            return stats.requests % self.fail_every == 0
        if event_id in stats.failed_once or zlib.crc32(event_id.encode()) % self.fail_every:
            return False
        stats.failed_once.add(event_id)
        return True

    # --- HTTP --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._stats)
        app.router.add_route("*", "/{tail:.*}", self._webhook)
        return app

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {path: stats.as_dict() for path, stats in sorted(self.endpoints.items())}
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        stats = self.endpoints.setdefault(path, EndpointStats())
        stats.requests += 1
        event_id = request.headers.get(EVENT_ID_HEADER)
        payload = _payload(request.content_type, body, request.query)
        status, text = self.decide(path, stats, event_id, payload)
        self._count(stats, status, event_id)
        if stats.sample is None or (stats.sample.status >= 300 and status < 300):
            stats.sample = _sample(request, body, status)
        log.info(
            "webhook received",
            extra={"method": request.method, "path": path, "status": status,
                   "event_id": event_id, "event_type": payload.get("event_type"),
                   "account_id": payload.get("account_id"), "body_bytes": len(body),
                   "headers": ",".join(sorted(request.headers.keys()))},
        )  # fmt: skip
        return web.Response(status=status, text=text)

    @staticmethod
    def _count(stats: EndpointStats, status: int, event_id: str | None) -> None:
        if 200 <= status < 300:
            stats.delivered += 1
            if event_id in stats.failed_once and event_id not in stats.recovered:
                stats.recovered.add(event_id)
                stats.retried += 1
        elif status == 503:
            stats.unavailable += 1
        elif status == 400:
            stats.rejected += 1

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0: any free port); returns the bound port."""
        runner = self._runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound: int = runner.addresses[0][1]
        return bound

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
