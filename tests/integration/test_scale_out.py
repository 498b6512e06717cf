"""Scale-out: three instances in one group, one added and one removed
mid-stream, zero events lost."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.helpers.config import put_all_states_config
from tests.helpers.events import first_seen_order_per_agent, numbered_events
from tests.helpers.service import ServiceUnderTest
from tests.helpers.topics import produce_json, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_three_instances_then_one_added_and_one_removed_mid_stream(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    settings = settings_factory(topic_partitions=6)
    rec = await receiver_factory(delay=0.002)
    put_all_states_config(settings, rec.url())
    topic = settings.agent_events_topic
    members: list[ServiceUnderTest] = [
        await service_process(settings).wait_ready() for _ in range(3)
    ]

    def assigned(svc: ServiceUnderTest) -> float:
        return svc.metric("stream_wfm_assigned_partitions", topic=topic)

    await wait_until(
        lambda: [assigned(m) for m in members] == [2.0, 2.0, 2.0],
        60,
        "6 partitions spread 2/2/2 over three instances",
    )

    def delivered() -> set[str]:
        return {r.headers["X-WFM-Event-Id"] for r in rec.requests}

    started = time.monotonic()
    produce_json(settings, topic, numbered_events(4000, agents=60))
    await wait_until(lambda: len(delivered()) >= 1000, 60, "first quarter delivered")

    fourth = await service_process(settings).wait_ready()  # added mid-stream
    produce_json(settings, topic, numbered_events(8000, agents=60, start=4000))
    await wait_until(lambda: assigned(fourth) > 0, 60, "the added instance took partitions")
    await wait_until(lambda: len(delivered()) >= 5000, 60, "more delivered")

    members[0].stop()  # removed mid-stream (SIGTERM: drains and commits)
    produce_json(settings, topic, numbered_events(12000, agents=60, start=8000))
    try:
        await wait_until(lambda: len(delivered()) == 12000, 120, "every event delivered")
    except AssertionError:
        missing = sorted({f"e-{i}" for i in range(12000)} - delivered())
        logs = "\n".join(m.logs()[-3000:] for m in [*members, fourth])
        raise AssertionError(
            f"{len(missing)} never delivered, e.g. {missing[:10]}\n{logs}"
        ) from None

    took = time.monotonic() - started

    survivors = [*members[1:], fourth]
    consumed = [m.metric("stream_wfm_events_consumed_total", topic=topic) for m in survivors]
    duplicates = len(rec.requests) - 12000
    print(
        f"scale-out: 12000 events in {took:.1f}s through 3 -> 4 -> 3 instances; "
        f"survivors consumed {[int(c) for c in consumed]}; {duplicates} redelivered"
    )
    assert all(c > 0 for c in consumed)
    assert delivered() == {f"e-{i}" for i in range(12000)}
    for agent, seq in first_seen_order_per_agent(rec.requests).items():
        assert seq == sorted(seq), f"{agent} reordered"
    assert read_topic(settings, settings.dlq_topic) == []  # a busy host is not a failing one
    assert max(Counter(r.headers["X-WFM-Event-Id"] for r in rec.requests).values()) <= 2
