"""HealthPublisher (docs/contract.md §10, health records): one record per account whose
endpoints were used since the last publication or whose breaker is not closed, key
``{account_id}/{instance_id}``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import classify_status
from stream_wfm.events import EventKind
from stream_wfm.health.breaker import BreakerPolicy
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.health.publisher import HealthPublisher
from stream_wfm.health.records import HealthRecord, decode_health_record, iso_utc
from stream_wfm.kafka.producer import ProduceError
from stream_wfm.ops.metrics import Metrics

AGENT, CALL = EventKind.AGENT, EventKind.CALL
OK, UNAVAILABLE = classify_status(200), classify_status(503)
TOPIC, INSTANCE = "wfm.integrations.health", "stream-wfm-0"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeProducer:
    def __init__(self) -> None:
        self.writes: list[tuple[str, bytes | None, bytes | None]] = []
        self.futures: list[asyncio.Future[Any]] = []

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        self.writes.append((topic, value, key))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def records(self) -> dict[bytes | None, HealthRecord]:
        out = {}
        for topic, value, key in self.writes:
            assert topic == TOPIC
            assert value is not None
            out[key] = decode_health_record(value)
        return out


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.endpoints = Endpoints(BreakerPolicy(), Metrics(CollectorRegistry()), self.clock)
        self.producer = FakeProducer()
        self.publisher = HealthPublisher(
            self.endpoints,
            self.producer,  # type: ignore[arg-type]
            topic=TOPIC,
            instance_id=INSTANCE,
            clock=self.clock,
        )

    def attempt(self, account: str, kind: EventKind, n: int = 1, answer: Any = OK) -> None:
        for _ in range(n):
            self.endpoints.admit(account, kind, (0, 1))
            self.endpoints.record(account, kind, answer, probe=False)


async def test_one_record_per_account_with_its_endpoints() -> None:
    rig = Rig()
    rig.attempt("acme", AGENT, 3)
    rig.attempt("acme", CALL, 10, UNAVAILABLE)  # opens
    rig.attempt("globex", AGENT, 1)
    rig.clock.now = T0 + 4
    assert rig.publisher.publish() == 2
    records = rig.producer.records()
    assert set(records) == {b"acme/stream-wfm-0", b"globex/stream-wfm-0"}
    acme = records[b"acme/stream-wfm-0"]
    assert (acme.account_id, acme.instance_id, acme.at) == ("acme", INSTANCE, iso_utc(T0 + 4))
    assert acme.key == "acme/stream-wfm-0"
    assert set(acme.endpoints) == {"agent", "call"}
    agent, call = acme.endpoints["agent"], acme.endpoints["call"]
    assert (agent.state, agent.attempts_5m, agent.failures_5m) == ("closed", 3, 0)
    assert agent.last_success_at == iso_utc(T0)
    assert (call.state, call.attempts_5m, call.failures_5m) == ("open", 10, 10)
    assert (call.last_error, call.failing_since) == ("HTTP 503", iso_utc(T0))
    assert set(records[b"globex/stream-wfm-0"].endpoints) == {"agent"}


async def test_a_second_publication_writes_only_what_is_new_or_not_closed() -> None:
    rig = Rig()
    rig.attempt("acme", AGENT, 3)
    rig.attempt("globex", CALL, 10, UNAVAILABLE)
    assert rig.publisher.publish() == 2
    rig.clock.now += 10
    assert rig.publisher.publish() == 1  # globex's breaker is open: reported every time
    assert rig.producer.writes[-1][2] == b"globex/stream-wfm-0"
    rig.attempt("acme", AGENT)
    rig.clock.now += 10
    assert rig.publisher.publish() == 2
    assert [key for _t, _v, key in rig.producer.writes[-2:]] == [
        b"acme/stream-wfm-0",
        b"globex/stream-wfm-0",
    ]


async def test_nothing_new_writes_nothing() -> None:
    rig = Rig()
    rig.attempt("acme", AGENT, 3)
    rig.publisher.publish()
    rig.clock.now += 10
    assert rig.publisher.publish() == 0
    assert len(rig.producer.writes) == 1
    assert Rig().publisher.publish() == 0  # nothing at all


async def test_a_failed_write_is_logged_once_until_one_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    caplog.set_level(logging.WARNING, logger="stream_wfm.health.publisher")
    for n in range(3):
        rig.attempt("acme", AGENT)
        rig.publisher.publish()
        rig.producer.futures[n].set_exception(ProduceError("unknown topic", retriable=False))
        await asyncio.sleep(0)
    assert len(caplog.records) == 1
    assert "could not write a health record" in caplog.records[0].getMessage()
    rig.attempt("acme", AGENT)
    rig.publisher.publish()
    rig.producer.futures[3].set_result(None)
    rig.attempt("acme", AGENT)
    rig.publisher.publish()
    rig.producer.futures[4].set_exception(ProduceError("unknown topic", retriable=False))
    await asyncio.sleep(0)
    assert len(caplog.records) == 2
    assert len(rig.producer.writes) == 5  # never written again
