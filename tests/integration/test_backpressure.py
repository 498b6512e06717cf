"""Backpressure end to end: a destination that stops answering holds the input (the
consumer thread stops fetching), a long hold pauses the input partitions instead, and
once it answers again every event is delivered exactly once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from stream_wfm.service import Service
from tests.helpers.config import put_all_states_config
from tests.helpers.topics import produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


def _gauge(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_a_stalled_destination_holds_then_pauses_the_input_and_loses_nothing(
    settings_factory: Any,
    receiver_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_factory(max_buffered_events=100, backpressure_hold_seconds=0.5)
    gate = asyncio.Event()
    rec = await receiver_factory(gate=gate)
    put_all_states_config(settings, rec.url())
    first = [{"account_id": "1", "agent_id": f"a{i % 50}", "event_type": "AVAILABLE",
              "event_id": f"e{i}"} for i in range(600)]  # fmt: skip
    later = [{"account_id": "1", "agent_id": f"a{i % 50}", "event_type": "AVAILABLE",
              "event_id": f"e{i}"} for i in range(600, 800)]  # fmt: skip
    with caplog.at_level(logging.INFO, "stream_wfm"):
        async with Service(settings) as service:
            held = "stream_wfm_paused_partitions"
            produce_json(settings, settings.agent_events_topic, first)
            # More than max_buffered_events are pending: the input is held.
            await wait_until(
                lambda: _gauge(service, held, reason="backpressure") > 0, 30, "input held"
            )
            assert _gauge(service, "stream_wfm_pending_events") > 100
            # The destination stays stalled past the hold limit: the inputs get paused.
            await wait_until(
                lambda: any("input partitions paused" in r.getMessage() for r in caplog.records),
                10,
                "inputs paused after the hold limit",
            )
            produce_json(settings, settings.agent_events_topic, later)
            gate.set()
            await rec.wait_count(800, timeout=60)
            await wait_until(
                lambda: _gauge(service, held, reason="backpressure") == 0, 10, "hold released"
            )
    ids = [r.headers["X-WFM-Event-Id"] for r in rec.requests]
    assert sorted(ids) == sorted(e["event_id"] for e in first + later)
