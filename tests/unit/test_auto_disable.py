"""FailureWatch (docs/contract.md §10, auto-disable) with a fake producer and a fake config
store: the notice first, then the config written back disabled, each only while the
account's config is still the one the failure period began with; failed writes tried
again; endpoints whose config changed forgotten."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import classify_status
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind
from stream_wfm.health.auto_disable import FailureWatch
from stream_wfm.health.breaker import Admission, BreakerPolicy
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.health.records import Notice, decode_notice, iso_utc, notice_id_for
from stream_wfm.integrations.model import parse_config_record, validate_config
from stream_wfm.kafka.producer import ProduceError
from stream_wfm.ops.metrics import Metrics

ACME = "15300002"
AGENT = EventKind.AGENT
UNAVAILABLE = classify_status(503)
CONFIG, NOTICES = "wfm.config", "wfm.notices"
T0 = 1_800_000_000.0
HOUR = 3600.0
V1, V2 = (0, 5), (0, 9)
URL = "https://wfm.example.com/acme/agent"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def entry(version: tuple[int, int] | None, **config: Any) -> TemplatedEntry:
    made = TemplatedEntry(
        validate_config(
            {"account_id": ACME, "agent_login_events": True, "agent_event_url": URL, **config}
        )
    )
    made.version = version
    return made


class FakeStore:
    def __init__(self) -> None:
        self.entries: dict[str, TemplatedEntry] = {}

    def get(self, account_id: str) -> TemplatedEntry | None:
        return self.entries.get(account_id)


class FakeProducer:
    """Records what is produced; the test resolves or fails each write's future."""

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

    def topics(self) -> list[str]:
        return [topic for topic, _value, _key in self.writes]

    def value(self, n: int) -> bytes:
        value = self.writes[n][1]
        assert value is not None
        return value


async def spin() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Rig:
    def __init__(self, disable_after: float | None = 3 * 24 * HOUR) -> None:
        self.clock = Clock()
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.endpoints = Endpoints(BreakerPolicy(), metrics, self.clock)
        self.store = FakeStore()
        self.store.entries[ACME] = entry(V1)
        self.producer = FakeProducer()
        self.watch = FailureWatch(
            self.endpoints,
            self.store,  # type: ignore[arg-type]
            self.producer,  # type: ignore[arg-type]
            metrics,
            config_topic=CONFIG,
            notices_topic=NOTICES,
            disable_after=disable_after,
            clock=self.clock,
        )

    def fail(self, account: str = ACME, version: tuple[int, int] | None = V1) -> None:
        """Ten 503 answers: the endpoint's breaker opens now."""
        for _ in range(10):
            assert self.endpoints.admit(account, AGENT, version) is Admission.SEND
            self.endpoints.record(account, AGENT, UNAVAILABLE, probe=False)
        assert [e.account_id for e in self.endpoints.failing()].count(account) == 1

    async def check_at(self, now: float) -> None:
        self.clock.now = now
        self.watch.check()
        await spin()

    def disabled_total(self) -> float:
        return self.registry.get_sample_value("stream_wfm_integrations_auto_disabled_total") or 0.0


async def test_nothing_is_written_before_the_endpoint_failed_for_disable_after() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    await rig.check_at(T0 + HOUR - 1)
    assert rig.producer.writes == []
    assert [e.account_id for e in rig.endpoints.failing()] == [ACME]


async def test_the_notice_is_written_first_then_the_config_disabled() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    await rig.check_at(T0 + HOUR)
    assert rig.producer.topics() == [NOTICES]  # the config waits for the notice
    _topic, _value, key = rig.producer.writes[0]
    assert key == ACME.encode()
    notice = decode_notice(rig.producer.value(0))
    assert notice.notice_id == notice_id_for(ACME, "agent", V1)
    assert (notice.account_id, notice.kind, notice.url) == (ACME, "agent", URL)
    assert (notice.failing_since, notice.at) == (iso_utc(T0), iso_utc(T0 + HOUR))
    assert notice.last_error == "HTTP 503"
    assert rig.disabled_total() == 0

    rig.producer.futures[0].set_result(None)
    await spin()
    assert rig.producer.topics() == [NOTICES, CONFIG]
    _topic, _value, key = rig.producer.writes[1]
    assert key == ACME.encode()
    written = parse_config_record(key, rig.producer.value(1))
    assert written.enabled is False
    assert written.disabled_reason == "endpoint_failing"
    assert written.disabled_at == iso_utc(T0 + HOUR)
    assert written.agent_event_url == URL  # the rest as it was
    assert written.agent_login_events is True
    assert rig.disabled_total() == 0  # not acknowledged yet

    rig.producer.futures[1].set_result(None)
    await spin()
    assert rig.disabled_total() == 1
    await rig.check_at(T0 + HOUR + 1)
    assert len(rig.producer.writes) == 2  # once


async def test_failed_probes_do_not_start_the_period_again() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    now, probes = T0, 0
    while now < T0 + HOUR - 600:
        now += 600
        rig.clock.now = now
        if rig.endpoints.admit(ACME, AGENT, V1) is Admission.PROBE:
            rig.endpoints.record(ACME, AGENT, UNAVAILABLE, probe=True)
            probes += 1
        await rig.check_at(now)
    assert probes == 5
    assert rig.producer.writes == []
    await rig.check_at(T0 + HOUR)
    assert rig.producer.topics() == [NOTICES]


async def test_nothing_is_written_when_the_config_changed_before_the_notice() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    rig.clock.now = T0 + HOUR
    rig.watch.check()
    rig.store.entries[ACME] = entry(V2)  # a fixed URL, read before the write
    await spin()
    assert rig.producer.writes == []
    await rig.check_at(T0 + HOUR + 1)
    assert rig.producer.writes == []
    assert list(rig.endpoints.failing()) == []  # forgotten: a new period with V2


async def test_the_config_is_not_written_when_it_changed_after_the_notice() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    await rig.check_at(T0 + HOUR)
    rig.store.entries[ACME] = entry(V2)
    rig.producer.futures[0].set_result(None)
    await spin()
    assert rig.producer.topics() == [NOTICES]
    assert rig.disabled_total() == 0


@pytest.mark.parametrize("failed", [0, 1], ids=["notice", "config"])
async def test_a_failed_write_is_tried_again_at_a_later_check(failed: int) -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    await rig.check_at(T0 + HOUR)
    if failed == 1:
        rig.producer.futures[0].set_result(None)
        await spin()
    rig.producer.futures[failed].set_exception(ProduceError("broker down", retriable=True))
    await spin()
    assert len(rig.producer.writes) == failed + 1
    assert rig.disabled_total() == 0

    await rig.check_at(T0 + HOUR + 1)
    retried = failed + 1
    assert rig.producer.topics()[retried:] == [NOTICES]  # from the start: the notice again
    assert rig.producer.value(retried) == rig.producer.value(0).replace(
        iso_utc(T0 + HOUR).encode(), iso_utc(T0 + HOUR + 1).encode()
    )  # the same notice_id
    rig.producer.futures[retried].set_result(None)
    await spin()
    assert rig.producer.topics()[retried:] == [NOTICES, CONFIG]
    rig.producer.futures[retried + 1].set_result(None)
    await spin()
    assert rig.disabled_total() == 1


async def test_a_check_while_a_disable_is_under_way_starts_no_other() -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    await rig.check_at(T0 + HOUR)
    await rig.check_at(T0 + HOUR + 1)
    await rig.check_at(T0 + HOUR + 2)
    assert rig.producer.topics() == [NOTICES]


@pytest.mark.parametrize(
    "change",
    ["new version", "deleted", "disabled by an operator"],
)
async def test_an_endpoint_whose_config_changed_is_forgotten(change: str) -> None:
    rig = Rig(disable_after=HOUR)
    rig.fail()
    if change == "new version":
        rig.store.entries[ACME] = entry(V2)
    elif change == "deleted":
        del rig.store.entries[ACME]
    else:
        rig.store.entries[ACME] = entry(V1, enabled=False)
    await rig.check_at(T0 + 1)
    assert list(rig.endpoints.failing()) == []
    assert rig.registry.get_sample_value("stream_wfm_circuits_open") == 0
    assert rig.endpoints.admit(ACME, AGENT, V2) is Admission.SEND
    await rig.check_at(T0 + 10 * HOUR)
    assert rig.producer.writes == []


async def test_disable_after_none_never_disables() -> None:
    rig = Rig(disable_after=None)
    rig.fail()
    await rig.check_at(T0 + 365 * 24 * HOUR)
    assert rig.producer.writes == []
    assert [e.account_id for e in rig.endpoints.failing()] == [ACME]  # still watched


async def test_every_instance_names_the_same_failure_period_alike() -> None:
    notices: list[Notice] = []
    for version in (V1, V1, V2):
        rig = Rig(disable_after=HOUR)
        rig.store.entries[ACME] = entry(version)
        rig.fail(version=version)
        await rig.check_at(T0 + HOUR + len(notices))  # another moment, another instance
        notices.append(decode_notice(rig.producer.value(0)))
    assert notices[0].notice_id == notices[1].notice_id == notice_id_for(ACME, "agent", V1)
    assert notices[2].notice_id == notice_id_for(ACME, "agent", V2) != notices[0].notice_id


def test_notice_ids_depend_on_the_account_the_kind_and_the_config_version() -> None:
    ids = {
        notice_id_for(account, kind, version)
        for account in (ACME, "15300003")
        for kind in ("agent", "call")
        for version in (None, (0, 5), (0, 9), (1, 5))
    }
    assert len(ids) == 16
    assert notice_id_for(ACME, "agent", (0, 5)) == notice_id_for(ACME, "agent", (0, 5))


async def test_the_metric_counts_each_disabled_integration() -> None:
    rig = Rig(disable_after=HOUR)
    rig.store.entries["15300003"] = entry(V2, account_id="15300003")
    rig.fail()
    rig.fail("15300003", V2)
    await rig.check_at(T0 + HOUR)
    assert rig.producer.topics() == [NOTICES, NOTICES]
    for future in rig.producer.futures[:2]:
        future.set_result(None)
    await spin()
    for future in rig.producer.futures[2:]:
        future.set_result(None)
    await spin()
    assert sorted(key or b"" for topic, _v, key in rig.producer.writes if topic == CONFIG) == [
        ACME.encode(),
        b"15300003",
    ]
    assert rig.disabled_total() == 2
