"""The real `stream-wfm run` process: kill -9, SIGTERM, two instances, rebalance hand-back."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.helpers.config import put_all_states_config
from tests.helpers.events import first_seen_order_per_agent, numbered_events
from tests.helpers.receiver import Receiver
from tests.helpers.topics import produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


def ids(rec: Receiver) -> Counter[str]:
    return Counter(r.headers["X-WFM-Event-Id"] for r in rec.requests)


def assert_per_agent_order(rec: Receiver) -> None:
    for agent, seq in first_seen_order_per_agent(rec.requests).items():
        assert seq == sorted(seq), f"{agent} out of order: {seq[:20]}"


async def test_kill9_mid_stream_then_restart_loses_nothing(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory(delay=0.02)
    put_all_states_config(settings, rec.url())
    n = 3000
    produce_json(settings, settings.agent_events_topic, numbered_events(n, agents=10))
    first = await service_process(settings).wait_ready()
    await rec.wait_count(n // 5, timeout=60)
    # Mid-stream, after offsets were committed at least once.
    await wait_until(lambda: first.metric("stream_wfm_offset_commits_total", result="ok") > 1)
    first.kill9()
    killed_at = len(rec.requests)
    await service_process(settings).wait_ready()
    await wait_until(lambda: len(ids(rec)) == n, 90, "every event delivered after restart")
    duplicates = len(rec.requests) - n
    print(f"kill -9 after {killed_at} deliveries; {n} events, {duplicates} redelivered")
    assert killed_at < n
    assert set(ids(rec)) == {f"e-{i}" for i in range(n)}


async def test_sigterm_drains_in_flight_and_commits(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    settings = settings_factory(shutdown_timeout=15.0)
    rec = await receiver_factory(delay=0.3)
    put_all_states_config(settings, rec.url())
    n = 200
    produce_json(settings, settings.agent_events_topic, numbered_events(n, agents=20))
    svc = await service_process(settings).wait_ready()
    await rec.wait_count(20, timeout=30)
    started = time.monotonic()
    svc.terminate()
    await wait_until(lambda: svc.poll() is not None, 15, "service exit")
    code = svc.poll()
    took = time.monotonic() - started
    delivered_before_exit = len(rec.requests)
    assert code == 0, svc.logs()[-2000:]
    assert took < settings.shutdown_timeout + 3
    # Restart: the rest is delivered, and nothing that was delivered is delivered again.
    await service_process(settings).wait_ready()
    await wait_until(lambda: len(ids(rec)) == n, 90, "every event delivered after restart")
    print(
        f"SIGTERM exit in {took:.1f}s after {delivered_before_exit} deliveries; "
        f"{len(rec.requests) - n} redelivered"
    )
    assert len(rec.requests) == n, "drained events must have been committed\n" + svc.logs()[-3000:]
    assert_per_agent_order(rec)


async def test_two_instances_share_work(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    settings = settings_factory(topic_partitions=4)
    rec = await receiver_factory()
    put_all_states_config(settings, rec.url())
    a = await service_process(settings).wait_ready()
    b = await service_process(settings).wait_ready()
    topic = settings.agent_events_topic
    await wait_until(
        lambda: (
            a.metric("stream_wfm_assigned_partitions", topic=topic)
            + b.metric("stream_wfm_assigned_partitions", topic=topic)
            == 4
            and a.metric("stream_wfm_assigned_partitions", topic=topic) > 0
            and b.metric("stream_wfm_assigned_partitions", topic=topic) > 0
        ),
        30,
        "partitions spread over both instances",
    )
    n = 2000
    produce_json(settings, topic, numbered_events(n, agents=100))
    await wait_until(lambda: len(ids(rec)) == n, 60, "every event delivered")
    consumed_a = a.metric("stream_wfm_events_consumed_total", topic=topic)
    consumed_b = b.metric("stream_wfm_events_consumed_total", topic=topic)
    print(f"two instances: {consumed_a:.0f} + {consumed_b:.0f} consumed of {n}")
    assert consumed_a > 0
    assert consumed_b > 0
    assert consumed_a + consumed_b == n
    assert len(rec.requests) == n
    assert_per_agent_order(rec)


async def test_rebalance_hands_back_without_loss_or_reordering(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    """A member joins mid-stream: the revoked partitions' consumed events finish and are
    committed before the hand-back, so the new owner starts exactly after them."""
    # shutdown_timeout bounds the revoke wait (half of it to drain queued events).
    settings = settings_factory(topic_partitions=4, shutdown_timeout=30.0)
    rec = await receiver_factory(delay=0.005)
    put_all_states_config(settings, rec.url())
    n = 6000
    events = numbered_events(n, agents=30)
    produce_json(settings, settings.agent_events_topic, events[: n // 2])
    first = await service_process(settings).wait_ready()
    await rec.wait_count(300, timeout=60)
    second = await service_process(settings).wait_ready()  # joins mid-stream: rebalance
    topic = settings.agent_events_topic
    await wait_until(
        lambda: second.metric("stream_wfm_assigned_partitions", topic=topic) > 0,
        60,
        "the new instance took over partitions",
    )
    produce_json(settings, topic, events[n // 2 :])
    await wait_until(lambda: len(ids(rec)) == n, 120, "every event delivered")
    assert second.metric("stream_wfm_events_consumed_total", topic=topic) > 0
    revokes = first.metric("stream_wfm_rebalances_total", kind="revoke")
    print(
        f"rebalance: {revokes:.0f} revoke(s) on the first instance; "
        f"{len(rec.requests) - n} redelivered of {n}"
    )
    assert revokes >= 1
    assert set(ids(rec)) == {f"e-{i}" for i in range(n)}
    assert_per_agent_order(rec)
    assert len(rec.requests) == n, "a clean hand-back redelivers nothing"
