"""LoopHistogram exports exactly what prometheus-client's Histogram exports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream_wfm.ops.histogram import LoopHistogram

BUCKETS = (0.005, 0.01, 0.5, 1.0, 2.5, 30.0)


def _exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


values = st.lists(
    st.sampled_from(BUCKETS) | st.floats(min_value=0, max_value=100, allow_nan=False),
    max_size=40,
)


@given(values, values)
def test_same_exposition_as_prometheus_client(agent: list[float], call: list[float]) -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("x_seconds", "Help.", ["kind"], buckets=BUCKETS, registry=reference)
    loop = LoopHistogram("x_seconds", "Help.", ["kind"], buckets=BUCKETS, registry=ours)
    for kind, observed in (("agent", agent), ("call", call)):
        ref_child, loop_child = ref.labels(kind), loop.labels(kind)
        for value in observed:
            ref_child.observe(value)
            loop_child.observe(value)
    assert _exposition(ours) == _exposition(reference)
    assert reference.get_sample_value("x_seconds_count", {"kind": "agent"}) == (
        ours.get_sample_value("x_seconds_count", {"kind": "agent"})
    )


def test_created_sample_and_registration() -> None:
    registry = CollectorRegistry()
    histogram = LoopHistogram("y_seconds", "Help.", ["kind"], buckets=BUCKETS, registry=registry)
    histogram.labels("agent").observe(0.2)
    assert registry.get_sample_value("y_seconds_created", {"kind": "agent"}) is not None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopHistogram("y_seconds", "Help.", ["kind"], buckets=BUCKETS, registry=registry)
    with pytest.raises(ValueError, match="label values"):
        histogram.labels("agent", "extra")
    with pytest.raises(ValueError, match="increasing"):
        LoopHistogram("z_seconds", "Help.", [], buckets=(1.0, 0.5), registry=CollectorRegistry())
