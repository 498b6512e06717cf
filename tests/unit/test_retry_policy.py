"""docs/contract.md §6: the retry policy (tiers, due times, when to dead-letter)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.delivery.exceptions import DeliveryTimeoutError, DestinationRefusedError
from stream_wfm.delivery.outcome import (
    Outcome,
    classify_status,
    connection_error_outcome,
    outcome_for_error,
)
from stream_wfm.retry.policy import next_step, retry_due_at, tier_for_attempt
from stream_wfm.settings import parse_backoff

TIERS = parse_backoff("10s,1m,10m,1h")  # the default
NOW = 1_000_000.0
DELIVERED = classify_status(200)
RETRYABLE = classify_status(503)
PERMANENT = classify_status(404)


@pytest.mark.parametrize(
    ("attempt", "n_tiers", "index"),
    [(1, 4, 0), (2, 4, 1), (3, 4, 2), (4, 4, 3), (5, 4, 3), (10, 4, 3), (1, 1, 0), (7, 1, 0),
     (2, 2, 1), (3, 2, 1)],
)  # fmt: skip
def test_tier_for_attempt(attempt: int, n_tiers: int, index: int) -> None:
    assert tier_for_attempt(attempt, n_tiers) == index


def test_tier_for_attempt_needs_tiers() -> None:
    with pytest.raises(ValueError, match="tier"):
        tier_for_attempt(1, 0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, (0, NOW + 10)), (2, (1, NOW + 60)), (3, (2, NOW + 600)), (4, (3, NOW + 3600)),
     (9, (3, NOW + 3600))],
)  # fmt: skip
def test_due_time_without_retry_after(attempt: int, expected: tuple[int, float]) -> None:
    assert retry_due_at(NOW, attempt, TIERS, None) == expected


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, 5.0, (0, NOW + 10)),  # shorter than the tier: the tier's delay
        (1, 10.0, (0, NOW + 10)),
        (1, 30.0, (1, NOW + 30)),  # waits 30 s in the 1m tier
        (1, 60.0, (1, NOW + 60)),
        (1, 61.0, (2, NOW + 61)),
        (1, 600.0, (2, NOW + 600)),
        (2, 5.0, (1, NOW + 60)),
        (2, 300.0, (2, NOW + 300)),
        (1, 7200.0, (3, NOW + 3600)),  # capped at the last tier's delay
        (4, 7200.0, (3, NOW + 3600)),
        (1, 0.0, (0, NOW + 10)),
        (1, float("inf"), (0, NOW + 10)),
        (1, float("nan"), (0, NOW + 10)),
    ],
)
def test_due_time_with_retry_after(
    attempt: int, retry_after: float, expected: tuple[int, float]
) -> None:
    assert retry_due_at(NOW, attempt, TIERS, retry_after) == expected


def test_single_tier() -> None:
    tiers = parse_backoff("30s")
    assert retry_due_at(NOW, 1, tiers, None) == (0, NOW + 30)
    assert retry_due_at(NOW, 5, tiers, 3600.0) == (0, NOW + 30)


@given(
    st.integers(min_value=1, max_value=20),
    st.none() | st.floats(min_value=0, max_value=1e9),
)
def test_due_time_bounds(attempt: int, retry_after: float | None) -> None:
    index, due = retry_due_at(NOW, attempt, TIERS, retry_after)
    base = tier_for_attempt(attempt, len(TIERS))
    delay = due - NOW
    assert index >= base
    assert TIERS[base][1] <= delay <= TIERS[-1][1]
    assert delay <= TIERS[index][1]  # the record never waits longer than its tier's delay
    if retry_after is not None:
        assert delay >= min(retry_after, TIERS[-1][1])


@pytest.mark.parametrize(
    ("attempts_done", "max_retries", "outcome", "step"),
    [
        (1, 3, DELIVERED, "done"),
        (4, 3, DELIVERED, "done"),
        (1, 3, PERMANENT, "dead_letter"),
        (1, 3, classify_status(301), "dead_letter"),
        (1, 3, outcome_for_error(DestinationRefusedError("10.0.0.1 is private")), "dead_letter"),
        (1, 0, RETRYABLE, "dead_letter"),  # max_retries 0: no retry at all
        (1, 1, RETRYABLE, "retry"),
        (2, 1, RETRYABLE, "dead_letter"),  # two attempts, then the DLQ
        (1, 3, outcome_for_error(DeliveryTimeoutError(10)), "retry"),
        (3, 3, connection_error_outcome(OSError("refused")), "retry"),
        (4, 3, RETRYABLE, "dead_letter"),
        (10, 10, classify_status(408), "retry"),
        (11, 10, classify_status(408), "dead_letter"),
        # A 429 or a Retry-After never spends a retry (docs/contract.md §10).
        (1, 0, classify_status(429), "defer"),
        (11, 10, classify_status(429), "defer"),
        (11, 10, replace(classify_status(503), retry_after=30.0), "defer"),
        (1, 3, replace(classify_status(404), retry_after=30.0), "dead_letter"),
        (1, 3, replace(classify_status(200), retry_after=30.0), "done"),
    ],
)
def test_next_step(attempts_done: int, max_retries: int, outcome: Outcome, step: str) -> None:
    assert next_step(attempts_done, max_retries, outcome) == step


@given(st.integers(min_value=0, max_value=10))
def test_an_always_failing_endpoint_gets_max_retries_plus_one_attempts(max_retries: int) -> None:
    attempts = 1
    while next_step(attempts, max_retries, RETRYABLE) == "retry":
        attempts += 1
    assert attempts == max_retries + 1
