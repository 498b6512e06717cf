"""Scripted answers for a :class:`~tests.helpers.receiver.Receiver`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.helpers.receiver import Received


def failing_first(status: int = 503) -> Callable[[Received], tuple[int, dict[str, str]]]:
    """Answer each event's first attempt (by ``X-WFM-Event-Id``) with ``status``, every
    later one with 200."""
    seen: Counter[str] = Counter()

    def respond(r: Received) -> tuple[int, dict[str, str]]:
        event_id = r.headers["X-WFM-Event-Id"]
        seen[event_id] += 1
        return (status if seen[event_id] == 1 else 200), {}

    return respond
