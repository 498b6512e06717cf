"""Endpoint health with the real service, broker and receivers (docs/contract.md §10):
fair share for a slow endpoint, the circuit breaker through an outage, auto-disable and
re-enable, health records of two instances merged by the console."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stream_wfm.console.health import merge_health
from stream_wfm.health.records import decode_notice, parse_iso_utc
from stream_wfm.retry.records import decode_dlq_record
from stream_wfm.service import Service
from tests.helpers.config import put_config
from tests.helpers.receiver import Received, Receiver
from tests.helpers.service import unique_instance_id
from tests.helpers.settings import settings_env
from tests.helpers.topics import produce_json, read_topic
from tests.helpers.waiting import wait_until
from tests.integration.test_console_health_http import health_cells, label_of, state_of
from tests.integration.test_console_http import PASSWORD, start_console

pytestmark = pytest.mark.integration


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


def login(account: str, agent: str, event_id: str) -> dict[str, Any]:
    return {"account_id": account, "agent_id": agent, "event_type": "LOGIN", "event_id": event_id}


def event_ids(requests: list[Received]) -> list[str]:
    return [r.headers["X-WFM-Event-Id"] for r in requests]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def test_a_slow_endpoint_does_not_hold_up_a_healthy_account(
    settings_factory: Any, receiver_factory: Any
) -> None:
    """A 1 s endpoint with 1,200 events behind a 600-event buffer; a healthy account on
    another host gets 300 events meanwhile: its p99 stays under 3 s, and the slow account's
    events all arrive, none dead-lettered (fair share defers without spending retries)."""
    settings = settings_factory(max_buffered_events=600, retry_backoff="2s,1m")
    slow = await receiver_factory(host="127.0.0.1", delay=1.0)
    healthy = await receiver_factory(host="127.0.0.2")
    for account, receiver in (("slow", slow), ("healthy", healthy)):
        put_config(
            settings,
            {
                "account_id": account,
                "agent_login_events": True,
                "agent_event_url": receiver.url(),
                "max_retries": 0,  # a retry spent would dead-letter: deferrals must not
            },
        )
    async with Service(settings) as service:
        produce_json(
            settings,
            settings.agent_events_topic,
            [login("slow", f"a{i % 240}", f"slow-{i}") for i in range(1200)],
        )
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") >= 300, timeout=30)
        sent_at: dict[str, float] = {}
        for batch in range(10):  # 300 events over ~5 s, while the slow ones fill the buffer
            events = [login("healthy", f"b{n}", f"ok-{batch}-{n}") for n in range(30)]
            now = time.time()
            sent_at.update((e["event_id"], now) for e in events)
            produce_json(settings, settings.agent_events_topic, events)
            await asyncio.sleep(0.5)  # pacing the workload, not synchronisation
        await healthy.wait_count(300, timeout=30)
        latencies = [r.at - sent_at[r.headers["X-WFM-Event-Id"]] for r in healthy.requests]
        deferred = metric(service, "stream_wfm_events_deferred_total", reason="fair_share")
        await slow.wait_for(lambda reqs: len({r.headers["X-WFM-Event-Id"] for r in reqs}) >= 1200,
                            timeout=150)  # fmt: skip
        dead = sum(
            metric(service, "stream_wfm_dead_letters_total", reason=reason)
            for reason in ("retries_exhausted", "permanent_status", "retry_not_written")
        )
    p99 = percentile(latencies, 0.99)
    print(f"healthy p99 {p99:.2f}s, max {max(latencies):.2f}s; fair-share deferrals {deferred}")
    assert p99 < 3.0
    assert deferred > 0  # the slow endpoint was moved aside
    assert sorted(set(event_ids(slow.requests))) == sorted(f"slow-{i}" for i in range(1200))
    assert dead == 0


async def test_an_outage_opens_the_breaker_and_costs_few_requests(
    settings_factory: Any, receiver_factory: Any
) -> None:
    """An endpoint answering 503 for 20 s, max_retries=2, 200 events over 20 agents: the
    breaker opens, the outage costs at most ~150 requests, nothing is dead-lettered, every
    event is delivered after recovery and the breaker closes."""
    settings = settings_factory(retry_backoff="2s,1m")
    outage_until = time.time() + 3600.0  # set for real once the events are produced
    receiver: Receiver = await receiver_factory(
        respond=lambda _r: (503, {}) if time.time() < outage_until else (200, {})
    )
    put_config(
        settings,
        {
            "account_id": "down",
            "agent_login_events": True,
            "agent_event_url": receiver.url(),
            "max_retries": 2,
        },
    )
    async with Service(settings) as service:
        outage_until = time.time() + 20.0
        produce_json(
            settings,
            settings.agent_events_topic,
            [login("down", f"a{i % 20}", f"e-{i}") for i in range(200)],
        )
        await wait_until(
            lambda: metric(service, "stream_wfm_circuit_transitions_total", to="open") >= 1,
            timeout=20,
        )
        assert metric(service, "stream_wfm_circuits_open") == 1
        await receiver.wait_for(
            lambda reqs: (
                len({r.headers["X-WFM-Event-Id"] for r in reqs if r.at >= outage_until}) >= 200
            ),
            timeout=120,
        )
        await wait_until(
            lambda: metric(service, "stream_wfm_circuit_transitions_total", to="closed") >= 1,
            timeout=10,
        )
        during = [r for r in receiver.requests if r.at < outage_until]
        deferred = metric(service, "stream_wfm_events_deferred_total", reason="circuit_open")
        dead = metric(service, "stream_wfm_dead_letters_total", reason="retries_exhausted")
        open_now = metric(service, "stream_wfm_circuits_open")
    delivered = {r.headers["X-WFM-Event-Id"] for r in receiver.requests if r.at >= outage_until}
    print(f"requests during the 20 s outage: {len(during)}; circuit_open deferrals {deferred}")
    assert len(during) <= 150
    assert delivered == {f"e-{i}" for i in range(200)}
    assert dead == 0
    assert deferred > 0
    assert open_now == 0


async def test_auto_disable_writes_a_notice_and_the_config_and_enable_delivers_all(
    settings_factory: Any, receiver_factory: Any, tmp_path: Path
) -> None:
    """An endpoint failing past STREAM_WFM_AUTO_DISABLE_AFTER (a few seconds here): a notice,
    the config written back disabled, events dead-lettered as endpoint_disabled; then
    `stream-wfm config enable` delivers every one of them once."""
    settings = settings_factory(
        retry_backoff="2s,5s",
        breaker_min_attempts=5,
        breaker_open_seconds=1,
        auto_disable_after="3s",
    )
    failing = True
    receiver: Receiver = await receiver_factory(
        respond=lambda _r: (503, {}) if failing else (200, {})
    )
    put_config(
        settings,
        {
            "account_id": "gone",
            "agent_login_events": True,
            "agent_event_url": receiver.url(),
            "max_retries": 3,
        },
    )
    first = [login("gone", f"a{i % 10}", f"e-{i}") for i in range(30)]
    later = [login("gone", f"b{i}", f"late-{i}") for i in range(10)]
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, first)
        await wait_until(
            lambda: metric(service, "stream_wfm_integrations_auto_disabled_total") == 1,
            timeout=60,
        )
        await wait_until(lambda: _disabled(service, "gone"), timeout=10)
        produce_json(settings, settings.agent_events_topic, later)
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="endpoint_disabled") >= 40
            ),
            timeout=60,
        )
        config = service.store.get("gone")
        assert config is not None
        assert config.config.disabled_reason == "endpoint_failing"
        assert config.config.disabled_at is not None
        [notice] = [decode_notice(m.value()) for m in read_topic(settings, settings.notices_topic)]
        assert (notice.account_id, notice.kind, notice.url) == ("gone", "agent", receiver.url())
        assert notice.last_error == "HTTP 503"
        assert parse_iso_utc(notice.failing_since) <= parse_iso_utc(notice.at)
        letters = [decode_dlq_record(m.value()) for m in read_topic(settings, settings.dlq_topic)]
        assert {letter.reason for letter in letters} == {"endpoint_disabled"}
        assert {letter.event_id for letter in letters} == {e["event_id"] for e in first + later}
        failing = False
        before = len(receiver.requests)
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STREAM_WFM_")}
        env.update(settings_env(settings))
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stream_wfm", "config", "enable", "gone"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        await receiver.wait_for(lambda reqs: len(reqs) - before >= 40, timeout=60)
        await wait_until(lambda: not _disabled(service, "gone"), timeout=10)
        delivered = [r.headers["X-WFM-Event-Id"] for r in receiver.requests[before:]]
    assert sorted(delivered) == sorted(e["event_id"] for e in first + later)  # once each


def _disabled(service: Service, account_id: str) -> bool:
    entry = service.store.get(account_id)
    return entry is not None and entry.disabled_reason is not None


async def test_two_instances_publish_health_and_the_console_merges_them(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    """Two instances deliver one account's events (its agents spread over 4 partitions);
    each publishes a health record under its own instance id, and the console merges
    them: the attempts add up, the label is Healthy."""
    settings = settings_factory(
        topic_partitions=4,
        # Static members (each its own STREAM_WFM_INSTANCE_ID, which names its health
        # records too) form a stable group on the embedded broker with 6 s sessions.
        kafka={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"},
        console_password=PASSWORD,
    )
    receiver: Receiver = await receiver_factory()
    put_config(
        settings,
        {"account_id": "both", "agent_login_events": True, "agent_event_url": receiver.url()},
    )
    ids = [unique_instance_id(settings) for _ in range(2)]
    members = [await service_process(settings, STREAM_WFM_INSTANCE_ID=i).wait_ready() for i in ids]
    topic = settings.agent_events_topic
    await wait_until(
        lambda: (
            [m.metric("stream_wfm_assigned_partitions", topic=topic) for m in members] == [2.0, 2.0]
        ),
        60,
        "4 partitions spread 2/2",
    )
    produce_json(settings, topic, [login("both", f"a{i}", f"e-{i}") for i in range(40)])
    await receiver.wait_count(40, timeout=30)
    console, stop = await start_console(settings)
    try:
        feed = state_of(console).health
        await wait_until(
            lambda: {r.instance_id for r in feed.records_of("both")} == set(ids),
            30,
            "a health record from each instance",
        )
        records = feed.records_of("both")
        merged = merge_health(records, time.time())
        await console.sign_in()
        _status, html = await console.get("/accounts")
    finally:
        await stop()
    assert all(r.endpoints["agent"].attempts_5m > 0 for r in records)  # both delivered some
    assert merged.endpoints["agent"].attempts_5m == 40
    assert merged.endpoints["agent"].instances == 2
    assert label_of(health_cells(html)["both"]) == ("health-ok", "Healthy")
