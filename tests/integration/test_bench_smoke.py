"""`stream-wfm bench` end to end, tiny: every scenario runs and every event arrives.

No timing assertions: the figures depend on the machine; only the shape of the
output (measurements and ratios, no verdicts) and the completeness of delivery are checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from stream_wfm.bench.report import BenchResult, Comparison, format_table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench_output() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_WFM_")}
    out = subprocess.run(
        [
            sys.executable, "-m", "stream_wfm", "bench", "--json", "--quiet",
            "--events", "2000", "--filtered-events", "3000", "--duration", "0.5",
            "--rate", "200", "--integrations", "50",
        ],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_every_event_is_delivered_exactly_once(bench_output: dict[str, Any]) -> None:
    for fmt in ("json", "urlencoded"):
        run = bench_output["service"][fmt]
        assert run["selected"] == 2000
        assert run["distinct"] == 2000, run
        assert run["missing"] == 0
        assert run["duplicates"] == 0
        assert run["format"] == fmt


def test_filtered_events_are_all_processed(bench_output: dict[str, Any]) -> None:
    filtered = bench_output["service"]["filtered"]
    assert filtered["events"] == 3000
    assert filtered["filtered"] == 3000


def test_rate_mode_measures_latency_of_every_event(bench_output: dict[str, Any]) -> None:
    latency = bench_output["service"]["latency"]
    raw = bench_output["baselines"]["raw_latency"]
    assert latency["expected"] == 100  # 200/s for 0.5 s
    # The first 10 % warm up and are not counted.
    assert latency["events"] == 90
    assert raw["events"] == 90
    for summary in (latency, raw):
        assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_baselines_and_integrations_are_reported(bench_output: dict[str, Any]) -> None:
    posts = bench_output["baselines"]["raw_post"]
    assert "aiohttp" in posts
    for post in posts.values():
        assert post["requests"] > 0
        assert post["errors"] == 0
        assert post["cpu_us_per_request"] > 0
    consume = bench_output["baselines"]["raw_consume"]
    assert consume["per_second"] > 0
    assert consume["join_seconds"] >= 0
    ints = bench_output["service"]["integrations"]
    assert ints["integrations"] == 50
    assert ints["accounts_loaded"] == 50
    assert ints["rss_mb"] > 0


def test_ratios_to_the_baselines_are_reported_without_verdicts(
    bench_output: dict[str, Any],
) -> None:
    comparisons = bench_output["comparisons"]
    names = [c["name"] for c in comparisons]
    assert names[0] == "throughput (json)"
    assert "service CPU per event" in names
    assert "urlencoded vs json" in names
    assert "filtered-out events" in names
    assert any(n.startswith("p99 latency") for n in names)
    assert "start to ready" in names
    for comparison in comparisons:
        assert set(comparison) == {"name", "value", "unit", "baseline", "baseline_name", "ratio"}
        assert comparison["value"] >= 0
        if comparison["name"] != "start to ready":
            assert comparison["ratio"] == pytest.approx(
                comparison["value"] / comparison["baseline"]
            )
    assert "targets" not in bench_output


def test_table_prints_measurements_and_ratios_only(bench_output: dict[str, Any]) -> None:
    result = BenchResult(**{
        **bench_output, "comparisons": [Comparison(**c) for c in bench_output["comparisons"]],
    })  # fmt: skip
    table = format_table(result)
    assert "raw POST loop, aiohttp" in table
    assert "stream-wfm, json" in table
    assert "urlencoded vs json" in table
    assert re.search(r"\d\.\d\dx", table), table
    for verdict in ("PASS", "FAIL", "target"):
        assert verdict not in table, table


@pytest.mark.parametrize(
    ("fraction", "events"), [("1", "5000"), ("0", "40000")], ids=["delivered", "filtered"]
)
def test_the_side_by_side_script_runs_two_trees_in_turn(
    tmp_path: Any, fraction: str, events: str
) -> None:
    """benchmarks/ab_service.py with this checkout as both trees: every pair measured,
    delivered or (every event) filtered."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_WFM_")}
    env["PYTHONPATH"] = root
    out = subprocess.run(
        [
            sys.executable, os.path.join(root, "benchmarks", "ab_service.py"), "--json",
            "--a", root, "--b", root, "--pairs", "2", "--events", events,
            "--selected-fraction", fraction,
        ],
        capture_output=True, text=True, timeout=180, env=env, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert len(result["pairs"]) == 2
    for pair in result["pairs"]:
        assert pair["A"] > 0
        assert pair["B"] > 0
        assert pair["ratio"] == pytest.approx(pair["B"] / pair["A"])
