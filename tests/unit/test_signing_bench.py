"""``stream-wfm bench`` reports what signing costs (docs/contract.md §11): the signed delivery
run next to the unsigned one of the same format, and the in-process cost of signing one
request."""

from __future__ import annotations

from typing import Any

import pytest

from stream_wfm.bench.report import BenchResult, compare, format_table
from stream_wfm.bench.signing import signing_cost

OPTIONS = {
    "events": 1000, "filtered_events": None, "rate": 100.0, "duration": 1.0, "concurrency": 8,
    "selected_fraction": 1.0, "format": "json", "transport": None, "integrations": 0,
}  # fmt: skip


def delivery(cpu: float, eps: float, signed: int) -> dict[str, Any]:
    return {
        "format": "json", "signing_secrets": signed, "events": 1000, "selected": 1000,
        "received": 1000, "distinct": 1000, "duplicates": 0, "missing": 0,
        "ready_seconds": 1.5, "cpu_seconds_total": 1.0, "steady_seconds": 1.0,
        "throughput_eps": eps, "cpu_us_per_event": cpu, "first_to_last_eps": eps,
    }  # fmt: skip


def result() -> BenchResult:
    r = BenchResult(dict(OPTIONS), "h1")
    r.service["json"] = delivery(80.0, 10_000.0, 0)
    r.service["signed"] = delivery(84.0, 9_600.0, 1)
    r.service["signing"] = {
        "format": "json", "rounds": 10, "build_us": 2.7, "build_and_sign_us_1": 4.9,
        "build_and_sign_us_3": 7.6, "sign_us_1": 2.2, "sign_us_3": 4.9,
    }  # fmt: skip
    r.comparisons = compare(r)
    return r


def test_the_signed_run_is_compared_with_the_unsigned_one() -> None:
    r = result()
    by_name = {c.name: c for c in compare(r)}
    cpu = by_name["signed vs unsigned CPU per event (json, 1 secret)"]
    assert (cpu.value, cpu.baseline, cpu.unit) == (84.0, 80.0, "us/event")
    assert cpu.ratio == pytest.approx(1.05)
    assert cpu.baseline_name == "unsigned json delivery"
    eps = by_name["signed vs unsigned throughput (json, 1 secret)"]
    assert eps.ratio == pytest.approx(0.96)


def test_the_table_shows_the_signed_run_and_the_cost_of_signing_one_request() -> None:
    table = format_table(result())
    assert "stream-wfm, json signed (1 secret)" in table
    assert "84.0 us/ev" in table
    assert "signing one request (in-process)" in table
    assert "2.20 us/req (1 secret), 4.90 (3)" in table
    assert "1.05x" in table


def test_without_a_signed_run_nothing_about_signing_is_shown() -> None:
    r = result()
    del r.service["signed"], r.service["signing"]
    r.comparisons = compare(r)
    assert not [c for c in r.comparisons if "signed" in c.name]
    assert "signed" not in format_table(r)


def test_the_in_process_cost_of_signing_is_measured() -> None:
    cost = signing_cost("urlencoded", rounds=2000)
    assert cost["format"] == "urlencoded"
    assert 0 < cost["build_us"] < cost["build_and_sign_us_1"] < cost["build_and_sign_us_3"]
    assert cost["sign_us_1"] == pytest.approx(cost["build_and_sign_us_1"] - cost["build_us"])
