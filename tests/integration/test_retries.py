"""Retry tiers and dead letters on the real broker (docs/contract.md §6)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stream_wfm.retry.records import decode_dlq_record, decode_retry_record
from stream_wfm.service import Service
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.topics import produce_json, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration
SECRET = "Basic c3VwZXI6c2VjcmV0LXZhbHVl"


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


def login(agent: str = "7", **more: Any) -> dict[str, Any]:
    return {"account_id": "1", "agent_id": agent, "event_type": "LOGIN", **more}


def scripted(*statuses: int, headers: dict[str, str] | None = None) -> Any:
    """Answer each event's n-th attempt with statuses[n] (the last one repeats)."""
    seen: Counter[str] = Counter()

    def respond(r: Received) -> tuple[int, dict[str, str]]:
        n = seen[r.headers["X-WFM-Event-Id"]]
        seen[r.headers["X-WFM-Event-Id"]] += 1
        status = statuses[min(n, len(statuses) - 1)]
        return status, (headers or {}) if status != 200 else {}

    return respond


def configure(settings: Any, url: str, **more: Any) -> None:
    put_config(
        settings,
        {
            "account_id": "1",
            "agent_login_events": True,
            "send_body_as_json": True,
            "agent_event_url": url,
            "headers": {"Authorization": SECRET},
            **more,
        },
    )


def dead_letters(settings: Any) -> list[Any]:
    return [decode_dlq_record(m.value()) for m in read_topic(settings, settings.dlq_topic)]


async def test_500_500_200_is_delivered_on_the_third_attempt(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="1s,2s")
    rec = await receiver_factory(respond=scripted(500, 500, 200))
    configure(settings, rec.url())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login(event_id="evt-1")])
        reqs = await rec.wait_count(3, timeout=30)
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") == 0)
        scheduled = {
            t: metric(service, "stream_wfm_retries_scheduled_total", tier=t) for t in ("1s", "2s")
        }
    assert [r.headers["X-WFM-Event-Id"] for r in reqs] == ["evt-1"] * 3
    assert len({r.body for r in reqs}) == 1
    assert all(r.headers["Authorization"] == SECRET for r in reqs)
    assert scheduled == {"1s": 1.0, "2s": 1.0}
    # Attempt n+1 waits at least tier n's delay.
    assert reqs[1].at - reqs[0].at >= 1.0
    assert reqs[2].at - reqs[1].at >= 2.0
    assert dead_letters(settings) == []


async def test_400_is_dead_lettered_after_one_attempt(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory(respond=scripted(400))
    configure(settings, rec.url())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        await wait_until(
            lambda: metric(service, "stream_wfm_dead_letters_total", reason="permanent_status") == 1
        )
    assert len(rec.requests) == 1
    [letter] = dead_letters(settings)
    assert (letter.reason, letter.attempts, letter.last_status) == ("permanent_status", 1, 400)
    assert letter.account_id == "1"
    assert read_topic(settings, settings.retry_topics()[0]) == []


async def test_max_retries_1_on_503_gives_two_attempts_then_dlq(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="1s")
    rec = await receiver_factory(respond=scripted(503))
    configure(settings, rec.url(), max_retries=1)
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="retries_exhausted") == 1
            ),
            30,
        )
    assert len(rec.requests) == 2
    [letter] = dead_letters(settings)
    assert (letter.attempts, letter.last_status, letter.last_error) == (2, 503, "HTTP 503")


async def test_max_retries_0_dead_letters_at_once(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory(respond=scripted(503))
    configure(settings, rec.url(), max_retries=0)
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="retries_exhausted") == 1
            )
        )
    assert len(rec.requests) == 1


async def test_429_retry_after_is_honoured(settings_factory: Any, receiver_factory: Any) -> None:
    settings = settings_factory(retry_backoff="1s,5s")
    rec = await receiver_factory(respond=scripted(429, 200, headers={"Retry-After": "3"}))
    configure(settings, rec.url())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        reqs = await rec.wait_count(2, timeout=30)
        tier = {
            t: metric(service, "stream_wfm_retries_scheduled_total", tier=t) for t in ("1s", "5s")
        }
    assert reqs[1].at - reqs[0].at >= 3.0  # not the 1 s of the first tier
    # A 3 s wait does not fit the 1 s tier: the record waits in the 5 s tier topic.
    assert tier == {"1s": 0.0, "5s": 1.0}
    [record] = [
        decode_retry_record(m.value()) for m in read_topic(settings, settings.retry_topics()[1])
    ]
    assert record.attempt == 1  # a 429 does not spend a retry (docs/contract.md §10)
    assert record.last_status == 429


async def test_429_never_spends_a_retry(settings_factory: Any, receiver_factory: Any) -> None:
    """With max_retries=0, three 429s (one with a Retry-After) and then a 200: delivered,
    nothing dead-lettered; a 503 in their place would have dead-lettered at once."""
    settings = settings_factory(retry_backoff="1s")
    rec = await receiver_factory(respond=scripted(429, 429, 429, 200))
    configure(settings, rec.url(), max_retries=0)
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        reqs = await rec.wait_count(4, timeout=30)
        dead = metric(service, "stream_wfm_dead_letters_total", reason="retries_exhausted")
    assert [r.headers["X-WFM-Event-Id"] for r in reqs] == [reqs[0].headers["X-WFM-Event-Id"]] * 4
    assert dead == 0


async def test_retry_uses_the_config_fixed_in_between(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="3s")
    rec = await receiver_factory()
    broken = await receiver_factory(respond=scripted(503))
    configure(settings, broken.url("/old"))
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login(event_id="fix-me")])
        await broken.wait_count(1)
        await wait_until(
            lambda: metric(service, "stream_wfm_retries_scheduled_total", tier="3s") == 1
        )
        put_config(
            settings,
            {
                "account_id": "1",
                "agent_login_events": True,
                "agent_event_url": rec.url("/new"),
                "headers": {"Authorization": "Basic cm90YXRlZA=="},
            },
        )
        reqs = await rec.wait_count(1, timeout=30)
    assert len(broken.requests) == 1
    assert reqs[0].path == "/new"
    assert reqs[0].headers["X-WFM-Event-Id"] == "fix-me"
    assert reqs[0].headers["Authorization"] == "Basic cm90YXRlZA=="  # rotated credential
    assert reqs[0].body == b""
    assert "agent_id=7" in reqs[0].query


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"enabled": False}, "disabled"), ({"agent_login_events": False}, "login_not_selected")],
)
async def test_pending_retries_are_dropped_by_the_current_config(
    settings_factory: Any, receiver_factory: Any, change: dict[str, Any], reason: str
) -> None:
    settings = settings_factory(retry_backoff="2s")
    rec = await receiver_factory(respond=scripted(503))
    configure(settings, rec.url())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login(), login("8")])
        await wait_until(
            lambda: metric(service, "stream_wfm_retries_scheduled_total", tier="2s") == 2
        )
        configure(settings, rec.url(), **change)
        await wait_until(
            lambda: metric(service, "stream_wfm_retries_dropped_total", reason=reason) == 2, 30
        )
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") == 0)
    assert len(rec.requests) == 2
    assert dead_letters(settings) == []


async def test_deleted_integration_drops_pending_retries(
    settings_factory: Any, receiver_factory: Any
) -> None:
    from tests.helpers.config import delete_config

    settings = settings_factory(retry_backoff="2s")
    rec = await receiver_factory(respond=scripted(503))
    configure(settings, rec.url())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [login()])
        await wait_until(
            lambda: metric(service, "stream_wfm_retries_scheduled_total", tier="2s") == 1
        )
        delete_config(settings, "1")
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_retries_dropped_total", reason="no_integration") == 1
            ),
            30,
        )
    assert len(rec.requests) == 1


async def test_no_header_value_in_any_retry_or_dlq_record(
    settings_factory: Any, receiver_factory: Any
) -> None:
    # Every attempt fails: a breaker off (min attempts out of reach) keeps the retries going.
    settings = settings_factory(retry_backoff="1s,2s", breaker_min_attempts=100_000)
    rec = await receiver_factory(respond=scripted(503, 503, 400))
    configure(settings, rec.url(), max_retries=5)
    events = [login(str(i)) for i in range(5)]
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, events)
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="permanent_status") == 5
            ),
            30,
        )
    records = [
        m for t in [*settings.retry_topics(), settings.dlq_topic] for m in read_topic(settings, t)
    ]
    assert len(records) == 5 * 2 + 5
    for m in records:
        raw = (m.key() or b"") + (m.value() or b"") + repr(m.headers()).encode()
        assert SECRET.encode() not in raw
        assert b"c3VwZXI6c2VjcmV0LXZhbHVl" not in raw


async def test_kill9_while_events_wait_in_retry_tiers_loses_nothing(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    # Every event fails its first attempt, then succeeds: all of them pass through a tier
    # (the breaker kept closed: 200 first attempts in a row fail, which would open it).
    settings = settings_factory(retry_backoff="8s", breaker_min_attempts=100_000)
    rec = await receiver_factory(respond=scripted(503, 200))
    configure(settings, rec.url(), max_retries=3)
    n = 200
    produce_json(
        settings,
        settings.agent_events_topic,
        # One event per agent: with per-agent order (docs/contract.md §11) an agent's later
        # events would wait behind its first one instead of being attempted.
        [login(f"a{i}", event_id=f"r-{i}") for i in range(n)],
    )
    first = await service_process(settings).wait_ready()
    await wait_until(
        lambda: len({r.headers["X-WFM-Event-Id"] for r in rec.requests}) == n,
        30,
        "every event attempted once",
    )
    await wait_until(lambda: first.metric("stream_wfm_retries_scheduled_total") == n, 30)
    # Wait for the input offsets to be committed, so the events live only in the retry tier.
    topic = settings.agent_events_topic
    await wait_until(
        lambda: (
            first.metric("stream_wfm_offset_commits_total", result="ok") > 0
            and first.metric("stream_wfm_consumer_lag", topic=topic) == 0
        ),
        10,
        "input offsets committed",
    )
    first.kill9()
    attempts_at_kill = len(rec.requests)
    await service_process(settings).wait_ready()
    ok: set[str] = set()

    def all_delivered() -> bool:
        counts: Counter[str] = Counter()
        for r in rec.requests:
            counts[r.headers["X-WFM-Event-Id"]] += 1
        ok.clear()
        ok.update(e for e, c in counts.items() if c >= 2)
        return len(ok) == n

    await wait_until(all_delivered, 60, "every event delivered on its retry")
    print(
        f"kill -9 with {n} events waiting in the retry tier ({attempts_at_kill} attempts "
        f"made); {len(rec.requests) - 2 * n} extra attempts after restart"
    )
    assert attempts_at_kill == n, "the kill must happen while every event waits for its retry"
    assert ok == {f"r-{i}" for i in range(n)}
    assert dead_letters(settings) == []
