"""Numbered agent events, and the order an agent's events were received in."""

from __future__ import annotations

from typing import Any

from tests.helpers.receiver import Received


def numbered_events(stop: int, agents: int, start: int = 0) -> list[dict[str, Any]]:
    """Agent-state events ``e-<i>`` for i in [start, stop), spread over ``agents`` agents,
    each carrying its per-agent sequence number in ``duration``."""
    return [
        {
            "account_id": "1",
            "agent_id": f"agent-{i % agents}",
            "event_type": "AVAILABLE",
            "duration": str(i // agents),
            "event_id": f"e-{i}",
        }
        for i in range(start, stop)
    ]


def first_seen_order_per_agent(requests: list[Received]) -> dict[str, list[int]]:
    """Per agent, the sequence numbers in the order first received (duplicates dropped, as a
    receiver de-duplicating by X-WFM-Event-Id would)."""
    seen: dict[str, list[int]] = {}
    for r in requests:
        body = r.json()
        seq = seen.setdefault(body["agent_id"], [])
        number = int(body["duration"])
        if number not in seq:
            seq.append(number)
    return seen
