"""Per-key order across retries and deferrals, with the real service, broker and receiver
(docs/contract.md §11): later events of an agent wait behind its event in a retry tier,
across a kill -9 and a member joining mid-stream, without holding other agents up."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from stream_wfm.service import Service
from tests.helpers.config import put_all_states_config
from tests.helpers.events import numbered_events
from tests.helpers.receiver import Received
from tests.helpers.service import ServiceUnderTest
from tests.helpers.topics import produce_json
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


class FailFirstAttempts:
    """Answers 503 to the first attempt of every event whose number is in ``failing``, 200
    to everything else, and records what was delivered (a 200), in order."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.attempts: Counter[str] = Counter()
        self.delivered: list[tuple[str, int, float]] = []  # (agent, sequence, when)
        self.ids: set[str] = set()

    def __call__(self, r: Received) -> tuple[int, dict[str, str]]:
        event_id = r.headers["X-WFM-Event-Id"]
        self.attempts[event_id] += 1
        if self.attempts[event_id] == 1 and int(event_id.split("-")[1]) in self.failing:
            return 503, {}
        body = r.json()
        if event_id not in self.ids:  # the first delivery counts (a receiver drops repeats)
            self.ids.add(event_id)
            self.delivered.append((body["agent_id"], int(body["duration"]), r.at))
        return 200, {}

    def per_agent(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for agent, sequence, _at in self.delivered:
            out.setdefault(agent, []).append(sequence)
        return out


def in_order(per_agent: dict[str, list[int]], agents: int, each: int) -> None:
    assert len(per_agent) == agents
    for agent, sequences in per_agent.items():
        assert sequences == list(range(each)), f"{agent}: {sequences}"


@pytest.mark.parametrize("keys_in_memory", [100_000, 2], ids=["in memory", "spilled to disk"])
async def test_an_agents_later_events_wait_behind_its_retried_one(
    settings_factory: Any, receiver_factory: Any, keys_in_memory: int
) -> None:
    """20 agents x 12 events; the first attempt of ~25 % of them fails: every event arrives,
    and every agent's events arrive in input order; also with all but two of the waiting
    keys spilled to disk."""
    settings = settings_factory(retry_backoff="1s,2s", order_keys_in_memory=keys_in_memory)
    responder = FailFirstAttempts({i for i in range(240) if i % 4 == 1})
    receiver = await receiver_factory(respond=responder)
    put_all_states_config(settings, receiver.url())
    on_disk = [0.0]
    async with Service(settings) as service:

        def delivered() -> bool:
            spilled = service.registry.get_sample_value(
                "stream_wfm_order_waiting_events", {"place": "disk"}
            )
            on_disk[0] = max(on_disk[0], spilled or 0.0)
            return len(responder.ids) == 240

        produce_json(settings, settings.agent_events_topic, numbered_events(240, agents=20))
        await wait_until(delivered, 60, "every event delivered")
        deferred = service.registry.get_sample_value(
            "stream_wfm_events_deferred_total", {"reason": "order"}
        )
    in_order(responder.per_agent(), agents=20, each=12)
    assert (deferred or 0) > 0  # later events did wait behind a retried one
    assert (on_disk[0] > 0) == (keys_in_memory == 2)


async def test_a_hot_key_waits_behind_its_retried_event_and_holds_no_one_else(
    settings_factory: Any, receiver_factory: Any
) -> None:
    """One agent's first event fails once and 999 more of its events follow; 20 other
    agents' events are produced at the same time: the hot agent's 1,000 arrive in order,
    and the others are not held up behind it."""
    settings = settings_factory(retry_backoff="5s,10s")
    hot = [
        {"account_id": "1", "agent_id": "hot", "event_type": "AVAILABLE",
         "duration": str(n), "event_id": f"h-{n}"}
        for n in range(1000)
    ]  # fmt: skip
    responder = FailFirstAttempts(set())  # nothing fails but h-0's first attempt (below)
    others = numbered_events(200, agents=20)

    def respond(r: Received) -> tuple[int, dict[str, str]]:
        event_id = r.headers["X-WFM-Event-Id"]
        if event_id == "h-0" and responder.attempts["h-0"] == 0:
            responder.attempts["h-0"] += 1
            return 503, {}
        return responder(r)

    receiver = await receiver_factory(respond=respond)
    put_all_states_config(settings, receiver.url())
    async with Service(settings):
        produced = time.time()
        produce_json(settings, settings.agent_events_topic, hot + others)
        await wait_until(lambda: len(responder.ids) == 1200, 60, "every event delivered")
    per_agent = responder.per_agent()
    assert per_agent["hot"] == list(range(1000))
    others_latency = [at - produced for agent, _n, at in responder.delivered if agent != "hot"]
    hot_first = min(at for agent, _n, at in responder.delivered if agent == "hot")
    assert hot_first - produced >= 5.0  # the hot agent waited for the 5 s tier...
    assert max(others_latency) < 2.5  # ...the others did not (2.5 s: a loaded machine)


async def events_waiting_behind_retries(
    settings: Any, receiver_factory: Any, service_process: Any, *, events: int, deferred: int
) -> tuple[FailFirstAttempts, ServiceUnderTest]:
    """A receiver failing the first attempt of every fourth of ``events`` numbered events,
    one service instance, and the first 240 of them (20 agents) produced; returns once
    ``deferred`` later events were deferred behind retried ones."""
    responder = FailFirstAttempts({i for i in range(events) if i % 4 == 1})
    receiver = await receiver_factory(respond=responder)
    put_all_states_config(settings, receiver.url())
    first: ServiceUnderTest = await service_process(settings).wait_ready()
    produce_json(settings, settings.agent_events_topic, numbered_events(240, agents=20))
    await wait_until(
        lambda: first.metric("stream_wfm_events_deferred_total", reason="order") >= deferred,
        30,
        "later events deferred behind retried ones",
    )
    return responder, first


async def test_order_holds_across_a_kill_9_while_events_wait_in_a_tier(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    """The same, and the instance is killed (kill -9) while events wait in the retry tier;
    a new instance rebuilds which keys wait from the retry partitions and keeps order."""
    settings = settings_factory(retry_backoff="4s,6s", topic_partitions=2)
    responder, first = await events_waiting_behind_retries(
        settings, receiver_factory, service_process, events=240, deferred=20
    )
    first.kill9()
    await service_process(settings).wait_ready()
    await wait_until(lambda: len(responder.ids) == 240, 90, "every event delivered")
    in_order(responder.per_agent(), agents=20, each=12)


async def test_order_holds_when_a_member_joins_mid_stream(
    settings_factory: Any, receiver_factory: Any, service_process: Any
) -> None:
    """Two instances, the second joining while events wait in the tiers: order holds."""
    settings = settings_factory(retry_backoff="3s,5s", topic_partitions=4)
    responder, _first = await events_waiting_behind_retries(
        settings, receiver_factory, service_process, events=480, deferred=10
    )
    second: ServiceUnderTest = await service_process(settings).wait_ready()
    produce_json(settings, settings.agent_events_topic, numbered_events(480, agents=20, start=240))
    await wait_until(
        lambda: (
            second.metric("stream_wfm_assigned_partitions", topic=settings.agent_events_topic) > 0
        ),
        60,
        "the second member took partitions",
    )
    await wait_until(lambda: len(responder.ids) == 480, 90, "every event delivered")
    in_order(responder.per_agent(), agents=20, each=24)
