"""The HTTP transport interface: ``send(request) -> Outcome``.

A transport owns its connection pool, enforces the per-destination-host limit,
never follows redirects, verifies TLS, applies the request's timeout and reads
``Retry-After``. Implementations are chosen by measurement (``stream-wfm bench``);
the same contract tests run against each of them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from stream_wfm.delivery.outcome import Outcome
from stream_wfm.delivery.request import WebhookRequest


@dataclass(frozen=True, slots=True)
class Response:
    """What the console's ``Send test event`` shows."""

    outcome: Outcome
    elapsed: float
    body_preview: bytes


class Transport(Protocol):
    def send(self, request: WebhookRequest) -> Awaitable[Outcome]:
        """Deliver one webhook request and classify what happened; never raises for I/O.
        (A coroutine, or a future as h1's when it has an idle connection: only awaited.)"""
        ...

    async def send_with_response(self, request: WebhookRequest, preview: int = 512) -> Response:
        """Like :meth:`send`, also returning time taken and the first bytes of the body."""
        ...

    async def close(self) -> None:
        """Close pooled connections; safe to call twice."""
        ...
