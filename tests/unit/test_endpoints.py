"""Endpoints (docs/contract.md §10): one breaker per (account, kind), what each endpoint
reports, the circuit metrics, the on_open callback, and a new config version starting an
endpoint afresh."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import classify_status
from stream_wfm.events import EventKind
from stream_wfm.health.breaker import PROBE_TIMEOUT, Admission, BreakerPolicy
from stream_wfm.health.endpoints import REPORT_SECONDS, Endpoint, Endpoints
from stream_wfm.health.records import EndpointReport, iso_utc
from stream_wfm.ops.metrics import Metrics

AGENT, CALL = EventKind.AGENT, EventKind.CALL
OK, UNAVAILABLE, NOT_FOUND = classify_status(200), classify_status(503), classify_status(404)
SEND, PROBE, DEFER = Admission.SEND, Admission.PROBE, Admission.DEFER
T0 = 1_800_000_000.0  # a multiple of 10: the start of a report bucket
V1, V2 = (0, 5), (0, 9)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state(endpoint: Endpoint | None) -> str:
    """The endpoint's breaker state, read afresh (mypy keeps an attribute narrowed by an
    assert)."""
    assert endpoint is not None
    return endpoint.breaker.state


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.opened: list[Endpoint] = []
        self.endpoints = Endpoints(
            BreakerPolicy(), Metrics(self.registry), self.clock, on_open=self.opened.append
        )

    def fail(self, account: str = "acme", kind: EventKind = AGENT, n: int = 10) -> None:
        """``n`` attempts answered 503 (ten open a closed breaker)."""
        for _ in range(n):
            assert self.endpoints.admit(account, kind, V1) is SEND
            self.endpoints.record(account, kind, UNAVAILABLE, probe=False)

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        assert value is not None, name
        return value

    def transitions(self, to: str) -> float:
        return self.sample("stream_wfm_circuit_transitions_total", to=to)

    def circuits_open(self) -> float:
        return self.sample("stream_wfm_circuits_open")


def test_an_endpoint_opens_defers_probes_and_closes_with_its_metrics() -> None:
    rig = Rig()
    endpoints = rig.endpoints
    rig.fail()
    endpoint = endpoints.get("acme", AGENT)
    assert endpoint is not None
    assert state(endpoint) == "open"
    assert rig.opened == [endpoint]
    assert (rig.circuits_open(), rig.transitions("open")) == (1, 1)
    assert list(endpoints.failing()) == [endpoint]

    assert endpoints.admit("acme", AGENT, V1) is DEFER
    rig.clock.now += 30
    assert endpoints.admit("acme", AGENT, V1) is PROBE
    assert endpoints.admit("acme", AGENT, V1) is DEFER  # the probe is out
    assert rig.transitions("half_open") == 1
    assert rig.circuits_open() == 1  # half-open counts as open
    assert list(endpoints.failing()) == [endpoint]

    endpoints.record("acme", AGENT, OK, probe=True)
    assert state(endpoint) == "closed"
    assert (rig.circuits_open(), rig.transitions("closed")) == (0, 1)
    assert list(endpoints.failing()) == []
    assert endpoints.admit("acme", AGENT, V1) is SEND
    assert rig.opened == [endpoint]  # told once


def test_on_open_is_told_again_when_a_failed_probe_opens_it_again() -> None:
    rig = Rig()
    rig.fail()
    rig.clock.now += 30
    assert rig.endpoints.admit("acme", AGENT, V1) is PROBE
    rig.endpoints.record("acme", AGENT, UNAVAILABLE, probe=True)
    endpoint = rig.endpoints.get("acme", AGENT)
    assert rig.opened == [endpoint, endpoint]
    assert rig.transitions("open") == 2
    assert rig.endpoints.admit("acme", AGENT, V1) is DEFER
    rig.clock.now += 59  # the open period doubled to 60 s
    assert rig.endpoints.admit("acme", AGENT, V1) is DEFER
    rig.clock.now += 1
    assert rig.endpoints.admit("acme", AGENT, V1) is PROBE


def test_a_lost_probe_is_replaced() -> None:
    rig = Rig()
    rig.fail()
    rig.clock.now += 30
    assert rig.endpoints.admit("acme", AGENT, V1) is PROBE
    rig.clock.now += PROBE_TIMEOUT
    assert rig.endpoints.admit("acme", AGENT, V1) is PROBE
    assert rig.transitions("half_open") == 1  # no new transition


def test_each_account_and_kind_has_its_own_breaker() -> None:
    rig = Rig()
    rig.fail("acme", AGENT)
    assert rig.endpoints.admit("acme", AGENT, V1) is DEFER
    assert rig.endpoints.admit("acme", CALL, V1) is SEND
    assert rig.endpoints.admit("globex", AGENT, V1) is SEND
    assert len(rig.endpoints) == 3


def test_results_of_attempts_under_way_when_it_opened_are_reported_but_change_nothing() -> None:
    rig = Rig()
    rig.fail()
    rig.endpoints.record("acme", AGENT, OK, probe=False)
    endpoint = rig.endpoints.get("acme", AGENT)
    assert endpoint is not None
    assert state(endpoint) == "open"
    assert endpoint.report(rig.clock()).attempts_5m == 11
    assert endpoint.last_success_at == T0


def test_a_new_config_version_starts_the_endpoint_afresh() -> None:
    rig = Rig()
    rig.fail()
    old = rig.endpoints.get("acme", AGENT)
    assert rig.endpoints.admit("acme", AGENT, V2) is SEND
    new = rig.endpoints.get("acme", AGENT)
    assert new is not None
    assert new is not old
    assert (new.version, new.breaker.state, new.breaker.failing_since) == (V2, "closed", None)
    assert list(rig.endpoints.failing()) == []
    assert (rig.circuits_open(), rig.transitions("closed")) == (0, 1)
    assert rig.sample("stream_wfm_longest_open_circuit_seconds") == 0
    # A new failure period: it takes ten failures again to open it.
    rig.endpoints.record("acme", AGENT, UNAVAILABLE, probe=False)
    assert state(new) == "closed"


def test_the_same_version_keeps_the_endpoint() -> None:
    rig = Rig()
    rig.fail(n=3)
    endpoint = rig.endpoints.get("acme", AGENT)
    rig.endpoints.admit("acme", AGENT, V1)
    assert rig.endpoints.get("acme", AGENT) is endpoint


def test_forget_closes_the_breaker_and_the_next_event_starts_afresh() -> None:
    rig = Rig()
    rig.fail()
    endpoint = rig.endpoints.get("acme", AGENT)
    assert endpoint is not None
    rig.endpoints.forget(endpoint)
    assert rig.endpoints.get("acme", AGENT) is None
    assert list(rig.endpoints.failing()) == []
    assert (rig.circuits_open(), rig.transitions("closed")) == (0, 1)
    assert rig.endpoints.admit("acme", AGENT, V1) is SEND
    fresh = rig.endpoints.get("acme", AGENT)
    assert fresh is not None
    assert state(fresh) == "closed"


def test_a_result_for_an_unknown_endpoint_is_ignored() -> None:
    rig = Rig()
    rig.endpoints.record("acme", AGENT, UNAVAILABLE, probe=False)
    rig.endpoints.deferred("acme", AGENT)
    assert len(rig.endpoints) == 0
    assert rig.endpoints.take_reports() == {}


def test_longest_open_is_the_longest_failure_period() -> None:
    rig = Rig()
    assert rig.endpoints.longest_open() == 0
    rig.fail("acme")
    rig.clock.now += 100
    rig.fail("globex")
    rig.clock.now += 20
    assert rig.endpoints.longest_open() == 120
    assert rig.sample("stream_wfm_longest_open_circuit_seconds") == 120
    assert rig.circuits_open() == 2
    # Failed probes do not reset it.
    rig.clock.now += 30
    assert rig.endpoints.admit("acme", AGENT, V1) is PROBE
    rig.endpoints.record("acme", AGENT, UNAVAILABLE, probe=True)
    assert rig.endpoints.longest_open() == 150


def test_a_report_has_the_figures_of_the_last_five_minutes() -> None:
    rig = Rig()
    endpoints = rig.endpoints
    endpoints.admit("acme", AGENT, V1)
    endpoints.record("acme", AGENT, OK, probe=False)
    rig.clock.now = T0 + 5
    # A 404: a failure in the report (an operator wants to see it), not to the breaker.
    endpoints.record("acme", AGENT, NOT_FOUND, probe=False)
    rig.clock.now = T0 + 12
    rig.fail(n=9)  # 9 of the 10 counted attempts failed: it opens
    endpoints.deferred("acme", AGENT, 4)
    reports = endpoints.take_reports()
    assert reports == {
        "acme": {
            "agent": EndpointReport(
                state="open",
                attempts_5m=11,
                failures_5m=10,
                deferred_5m=4,
                last_success_at=iso_utc(T0),
                last_failure_at=iso_utc(T0 + 12),
                last_error="HTTP 503",
                failing_since=iso_utc(T0 + 12),
            )
        }
    }
    # Five minutes later the first bucket's figures have left the counts.
    rig.clock.now = T0 + REPORT_SECONDS + 5
    report = endpoints.take_reports()["acme"]["agent"]
    assert (report.attempts_5m, report.failures_5m, report.deferred_5m) == (9, 9, 4)
    rig.clock.now = T0 + REPORT_SECONDS + 15
    report = endpoints.take_reports()["acme"]["agent"]
    assert (report.attempts_5m, report.failures_5m, report.deferred_5m) == (0, 0, 0)
    assert report.last_success_at == iso_utc(T0)  # the last times stay


def test_reports_cover_what_was_active_since_the_last_call_or_is_not_closed() -> None:
    rig = Rig()
    endpoints = rig.endpoints
    endpoints.admit("acme", AGENT, V1)
    endpoints.record("acme", AGENT, OK, probe=False)
    rig.fail("globex", CALL)
    assert set(endpoints.take_reports()) == {"acme", "globex"}
    rig.clock.now += 10
    failing = endpoints.get("globex", CALL)
    assert failing is not None
    assert endpoints.take_reports() == {"globex": {"call": failing.report(rig.clock())}}
    endpoints.deferred("acme", AGENT)
    assert set(endpoints.take_reports()) == {"acme", "globex"}
    assert set(endpoints.take_reports()) == {"globex"}
    endpoints.record("acme", AGENT, OK, probe=False)  # in the bucket of the deferral
    assert set(endpoints.take_reports()) == {"acme", "globex"}


def test_closed_endpoints_idle_for_five_minutes_are_forgotten() -> None:
    rig = Rig()
    endpoints = rig.endpoints
    endpoints.admit("acme", AGENT, V1)
    endpoints.record("acme", AGENT, OK, probe=False)
    rig.clock.now += 5
    endpoints.record("acme", AGENT, OK, probe=False)  # the same bucket: active until now
    rig.fail("globex")
    endpoints.take_reports()
    rig.clock.now += REPORT_SECONDS
    endpoints.take_reports()
    assert endpoints.get("acme", AGENT) is not None  # idle for exactly 5 minutes
    rig.clock.now += 1
    endpoints.take_reports()
    assert endpoints.get("acme", AGENT) is None
    assert endpoints.get("globex", AGENT) is not None  # open: kept however idle


def test_a_young_endpoints_rate_counts_from_its_start_not_from_its_bucket() -> None:
    """A fast endpoint that began 1 s ago, 9 s into a 10-second bucket, answered 1,000
    requests: 1,000 a second (read as 100 a second, fair share would move it aside)."""
    rig = Rig()
    endpoints = rig.endpoints
    rig.clock.now = T0 + 9
    endpoints.admit("acme", AGENT, V1)
    for n in range(1000):
        rig.clock.now = T0 + 9 + n / 1000
        endpoints.record("acme", AGENT, OK, probe=False)
    endpoint = endpoints.get("acme", AGENT)
    assert endpoint is not None
    assert endpoint.rate(T0 + 10) == pytest.approx(1000, rel=0.01)


def test_the_rate_is_attempts_per_second_over_the_last_one_to_two_seconds() -> None:
    rig = Rig()
    endpoints = rig.endpoints
    endpoints.admit("acme", AGENT, V1)
    endpoint = endpoints.get("acme", AGENT)
    assert endpoint is not None
    assert endpoint.rate(rig.clock()) == 0.0
    rates = []
    for tenth in range(600):  # ten answers a second for a minute
        rig.clock.now = T0 + tenth / 10
        endpoints.record("acme", AGENT, OK if tenth % 2 else UNAVAILABLE, probe=False)
        if tenth >= 200:
            rates.append(endpoint.rate(rig.clock()))
    assert min(rates) == pytest.approx(10, rel=0.1)
    assert max(rates) == pytest.approx(10, rel=0.1)
    # Silence: the rate falls.
    assert endpoint.rate(rig.clock() + 5) < 4
    assert endpoint.rate(rig.clock() + 21) < 1
    rig.clock.now += 100
    endpoints.record("acme", AGENT, OK, probe=False)
    assert endpoint.rate(rig.clock()) <= 2.0  # one answer, over the shortest span (0.5 s)
    assert endpoint.rate(rig.clock() + 1) <= 1.0


def later_success(endpoints: Endpoints, endpoint: Endpoint) -> None:
    """What the attempts' handler does for a delivered event of a closed endpoint."""
    n = endpoint.unflushed
    endpoint.unflushed = n + 1
    if not n:
        endpoints.succeeded_later(endpoint)


async def test_successes_counted_later_count_once_per_loop_turn_as_if_recorded() -> None:
    """Successes are counted at the end of the loop turn they happened in, once per
    endpoint: the report and the breaker see the same as with record()."""
    batched, direct = Rig(), Rig()
    for rig in (batched, direct):
        rig.endpoints.admit("acme", AGENT, V1)
    endpoint = batched.endpoints.agent["acme"]
    for _ in range(5):
        later_success(batched.endpoints, endpoint)
        direct.endpoints.record("acme", AGENT, OK, probe=False)
    assert endpoint.unflushed == 5
    await asyncio.sleep(0)  # the end of this loop turn
    assert endpoint.unflushed == 0
    assert batched.endpoints.take_reports() == direct.endpoints.take_reports()
    # 10 failures after the 5 successes: 10 of 15 failed, under the 70 % that opens it
    # (were the successes not in the breaker's window, 10 of 10 would open it).
    for rig in (batched, direct):
        rig.fail(n=10)
        assert state(rig.endpoints.agent["acme"]) == "closed"


async def test_a_failure_counts_the_successes_before_it_first() -> None:
    rig = Rig()
    rig.endpoints.admit("acme", AGENT, V1)
    endpoint = rig.endpoints.agent["acme"]
    for _ in range(30):
        later_success(rig.endpoints, endpoint)
    for _ in range(10):  # in the same loop turn: 10 of 40 failed, under the ratio
        rig.endpoints.record("acme", AGENT, UNAVAILABLE, probe=False)
    assert state(endpoint) == "closed"
    await asyncio.sleep(0)
    assert rig.endpoints.take_reports()["acme"]["agent"].attempts_5m == 40
