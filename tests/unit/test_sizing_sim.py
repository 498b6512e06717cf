"""benchmarks/sizing_sim.py: the simulation's arithmetic on cases whose answers are known
(docs/sizing.md relies on it)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import sizing_sim as sim


def test_utilisation_is_rate_times_cost_under_capacity() -> None:
    r = sim.loop_sim(5_000, 40.0, 1_000, 0.01, duration_s=6.0, poisson=False)
    assert r.throughput == pytest.approx(5_000, rel=0.01)
    assert r.utilisation == pytest.approx(5_000 * 40e-6, rel=0.01)
    assert r.delay_p99_ms == pytest.approx(0.04, abs=0.001)  # its own CPU only: no queue


def test_throughput_caps_at_one_over_cost() -> None:
    r = sim.loop_sim(50_000, 50.0, 1_000, 0.001, duration_s=4.0)
    assert r.throughput == pytest.approx(1 / 50e-6, rel=0.01)
    assert r.utilisation == pytest.approx(1.0, abs=0.005)
    assert r.max_pending == 20_000  # the buffer fills; the rest waits in Kafka


def test_a_slower_core_share_lowers_the_cap() -> None:
    r = sim.loop_sim(50_000, 50.0, 1_000, 0.001, duration_s=4.0, cpu_share=0.5)
    assert r.throughput == pytest.approx(0.5 / 50e-6, rel=0.01)


def test_littles_law_in_flight() -> None:
    r = sim.loop_sim(2_000, 10.0, 10_000, 0.2, duration_s=6.0, latency_dist="exp")
    assert r.in_flight == pytest.approx(2_000 * 0.2, rel=0.05)


def test_in_flight_limit_caps_throughput_at_limit_over_latency() -> None:
    r = sim.loop_sim(10_000, 10.0, 256, 0.5, duration_s=6.0, max_buffered=100_000)
    assert r.throughput == pytest.approx(256 / 0.5, rel=0.02)
    assert r.in_flight == pytest.approx(256, abs=1)
    assert r.delay_p99_ms > 1_000  # queued for slots


def test_latency_draws_have_the_mean_asked_for() -> None:
    rng = random.Random(3)
    for kind in ("fixed", "exp", "lognormal"):
        draw = sim.latency_sampler(kind, 0.1, rng)
        mean = sum(draw() for _ in range(20_000)) / 20_000
        assert mean == pytest.approx(0.1, rel=0.03), kind


def test_breaker_opens_at_min_attempts_and_ratio() -> None:
    b = sim.Breaker()
    for i in range(9):
        b.record(float(i), 1, ok=False, probe=False)
    assert b.state == "closed"  # 9 attempts: under the minimum
    b.record(9.0, 1, ok=False, probe=False)
    assert b.state == "open"
    assert b.admit(38.9) == "defer"
    assert b.admit(39.0) == "probe"  # 30 s later
    assert b.admit(39.1) == "defer"  # one probe at a time
    b.record(39.2, 1, ok=False, probe=True)
    assert b.state == "open"
    assert b.reopen_at == pytest.approx(39.2 + 60)  # doubled


def test_breaker_ignores_attempts_older_than_the_window() -> None:
    b = sim.Breaker()
    for i in range(9):
        b.record(float(i), 1, ok=False, probe=False)
    b.record(70.0, 1, ok=False, probe=False)  # the first nine are out of the window
    assert b.state == "closed"


def test_a_slow_endpoint_spends_its_retries_then_dead_letters() -> None:
    # one event per 1,000 s: the breaker never sees 10 attempts in a minute
    e = sim.endpoint_sim(0.001, 20_000.0, horizon_s=40_000.0, seed=5)
    assert not e.breaker_opened
    assert e.retry_records == pytest.approx(3 * e.events, abs=3)  # max_retries 3
    assert e.records_by_tier[:3] == [pytest.approx(e.events, abs=1)] * 3
    assert e.dead_letters == pytest.approx(e.events, abs=1)
    assert e.delivered <= 1


def test_deferring_a_first_tier_delay_at_a_time_churns_quadratically() -> None:
    # The service before 2026-12-07. 10 events/s for 600 s: opens within a second; then
    # each waiting event comes back from the 10 s tier and is deferred again:
    # records ~ rate x T^2 / (2 x 10 s)
    e = sim.endpoint_sim(10.0, 600.0, defer_to_probe=False)
    assert e.breaker_opened
    assert e.dead_letters == 0
    assert e.delivered == pytest.approx(e.events, abs=1)  # all delivered after the outage
    assert e.retry_records_in_failure == pytest.approx(10.0 * 600.0**2 / 20, rel=0.05)
    assert e.records_last_minute / 60 == pytest.approx(10.0 * 600 / 10, rel=0.1)


def test_auto_disable_dead_letters_instead_of_churning() -> None:
    churn = sim.endpoint_sim(10.0, 600.0, defer_to_probe=False)
    off = sim.endpoint_sim(10.0, 600.0, auto_disable_s=60.0)
    assert off.dead_letters == pytest.approx(off.events, abs=1)
    assert off.retry_records < churn.retry_records / 20


def test_size_follows_cpu_and_in_flight() -> None:
    c = sim.size(10_000, 50_000, 500, cost_us=50.0, loop_share=1.0, target=0.5, max_in_flight=256)
    assert c.by_cpu == 5  # 50,000 x 50 us / 0.5
    assert c.by_in_flight == 98  # 50,000 x 0.5 s / 256
    assert c.instances == 98
    assert c.partitions >= 2 * c.instances
    assert c.in_flight == pytest.approx(50_000 * 0.5 / 98)


def test_deferring_until_the_next_probe_writes_a_few_records_per_event() -> None:
    churn = sim.endpoint_sim(10.0, 600.0, defer_to_probe=False)
    probe = sim.endpoint_sim(10.0, 600.0, defer_to_probe=True)
    assert probe.delivered == pytest.approx(probe.events, abs=1)
    assert probe.dead_letters == 0
    # open periods 30, 60, 120, 240 s...: an event is written about once per period
    assert probe.retry_records < 6 * probe.events < churn.retry_records / 5
