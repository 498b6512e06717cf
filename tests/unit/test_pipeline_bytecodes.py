"""benchmarks/pipeline_cpu.py --bytecodes: the per-function bytecode profile of the pipeline
counts the pipeline's functions per event and leaves the harness's set-up out."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import pipeline_cpu


def test_the_profile_counts_the_pipeline_per_event_without_the_set_up() -> None:
    table = pipeline_cpu.bytecodes_per_event(100, 1.0, "json")
    assert table["stream_wfm/pipeline/intake.py:on_batch"] > 10
    assert table["stream_wfm/delivery/request.py:build"] > 10
    # Building the bench's events (the set-up) runs per event too, and is subtracted.
    assert not any("workload.py" in name for name in table)
    assert 300 < sum(table.values()) < 5000
