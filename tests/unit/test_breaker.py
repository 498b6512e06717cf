"""CircuitBreaker (docs/contract.md §10): a model test against a reference written from the
module docstring, and examples of each stated rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_wfm.health.breaker import (
    MAX_OPEN_SECONDS,
    PROBE_TIMEOUT,
    Admission,
    BreakerPolicy,
    CircuitBreaker,
    Result,
)
from stream_wfm.health.records import BreakerState

SUCCESS, FAILURE, PERMANENT = Result.SUCCESS, Result.FAILURE, Result.PERMANENT
SEND, PROBE, DEFER = Admission.SEND, Admission.PROBE, Admission.DEFER
T0 = 1_800_000_000.0

# --- the reference model ---------------------------------------------------------------


@dataclass
class Model:
    """The breaker as the docstring states it, kept as plainly as possible: every counted
    attempt is kept with its time, and the window is recomputed from whole seconds at each
    one. A probe's result decides only while half-open (a late one, when the breaker is
    open again or closed, is an ordinary result); the breaker cannot tell when an attempt
    was sent, so any result recorded while it is closed counts."""

    policy: BreakerPolicy
    state: BreakerState = "closed"
    counted: list[tuple[float, bool]] = field(default_factory=list)  # (time, failed)
    failing_since: float | None = None
    open_for: float = 0.0
    opened_at: float = 0.0
    probe_at: float = 0.0

    def __post_init__(self) -> None:
        self.open_for = self.policy.open_seconds

    def allow(self, now: float) -> tuple[Admission, BreakerState | None]:
        if self.state == "closed":
            return SEND, None
        if self.state == "open":
            if now - self.opened_at < self.open_for:
                return DEFER, None
            self.state = "half_open"
            self.probe_at = now
            return PROBE, "half_open"
        if now - self.probe_at < PROBE_TIMEOUT:
            return DEFER, None  # the probe is out
        self.probe_at = now  # lost: another probe
        return PROBE, None

    def record(self, now: float, result: Result, probe: bool) -> BreakerState | None:
        if probe and self.state == "half_open":
            if result is FAILURE:
                self.open_for = min(2 * self.open_for, MAX_OPEN_SECONDS)
                return self._open(now)
            self.state = "closed"
            self.failing_since = None
            self.open_for = self.policy.open_seconds
            self.counted = []  # a new window
            return "closed"
        if self.state != "closed" or result is PERMANENT:
            return None  # under way when it opened, or not counted at all
        self.counted.append((now, result is FAILURE))
        window = [failed for at, failed in self.counted if int(now) - int(at) < self.policy.window]
        ratio = Fraction(str(self.policy.failure_ratio))
        if len(window) >= self.policy.min_attempts and Fraction(sum(window), len(window)) >= ratio:
            self.failing_since = now
            self.open_for = self.policy.open_seconds
            return self._open(now)
        return None

    def _open(self, now: float) -> BreakerState:
        self.state = "open"
        self.opened_at = now
        self.counted = []
        return "open"


policies = st.builds(
    BreakerPolicy,
    window=st.integers(1, 30).map(float),
    min_attempts=st.integers(1, 6),
    failure_ratio=st.sampled_from([0.25, 0.5, 0.6, 0.7, 0.75, 1.0]),
    open_seconds=st.sampled_from([1.0, 2.5, 30.0, 200.0, 400.0, 600.0]),
)
# How far time moves before a step: mostly nothing or a fraction of a second (within a
# window), sometimes a jump past a window, an open period, the probe timeout or the
# longest open period.
SMALL_GAPS = [0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 2.5, 5.0]
BIG_GAPS = [29.75, 30.0, 59.75, PROBE_TIMEOUT, 120.0, 400.0, MAX_OPEN_SECONDS, 1200.0]
gaps = st.sampled_from(SMALL_GAPS * 3 + BIG_GAPS)
# A step: ask before sending (after a gap, or at / just before the model's next deadline:
# the end of the open period, the probe timeout), record an attempt's result, or record a
# probe's result.
steps = st.lists(
    st.tuples(
        st.sampled_from(["allow", "allow at deadline", "allow before deadline", "record", "probe"]),
        gaps,
        st.sampled_from([FAILURE, FAILURE, FAILURE, SUCCESS, SUCCESS, PERMANENT]),
    ),
    min_size=10,
    max_size=150,
)


def deadline(model: Model) -> float | None:
    if model.state == "open":
        return model.opened_at + model.open_for
    if model.state == "half_open":
        return model.probe_at + PROBE_TIMEOUT
    return None


@settings(max_examples=300)
@given(policies, steps)
def test_the_breaker_behaves_as_its_docstring_states(
    policy: BreakerPolicy, script: list[tuple[str, float, Result]]
) -> None:
    breaker = CircuitBreaker(policy)
    model = Model(policy)
    now = T0
    for op, gap, result in script:
        now += gap
        if op.startswith("allow"):
            edge = deadline(model)
            if op != "allow" and edge is not None:
                now = max(now - gap, edge - (0.25 if op == "allow before deadline" else 0.0))
            assert breaker.allow(now) == model.allow(now)
        else:
            probe = op == "probe"
            assert breaker.record(now, result, probe) == model.record(now, result, probe)
        assert breaker.state == model.state
        assert breaker.failing_since == model.failing_since
        since = model.failing_since
        assert breaker.open_seconds(now) == (0.0 if since is None else now - since)


# --- examples ------------------------------------------------------------------------------


def state(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (mypy keeps an attribute narrowed by an assert)."""
    return breaker.state


def record_all(breaker: CircuitBreaker, now: float, results: list[Result]) -> list[str | None]:
    return [breaker.record(now, result) for result in results]


def opened(at: float = T0, policy: BreakerPolicy | None = None) -> CircuitBreaker:
    """A breaker that opened at ``at`` (ten failures)."""
    breaker = CircuitBreaker(policy or BreakerPolicy())
    assert record_all(breaker, at, [FAILURE] * 10)[-1] == "open"
    return breaker


def test_ten_attempts_with_70_percent_failed_open_it() -> None:
    breaker = CircuitBreaker(BreakerPolicy())
    assert record_all(breaker, T0, [SUCCESS] * 3 + [FAILURE] * 6) == [None] * 9
    assert breaker.record(T0 + 1, FAILURE) == "open"  # 7 of 10
    assert state(breaker) == "open"
    assert breaker.failing_since == T0 + 1


def test_nine_failed_attempts_do_not_open_it() -> None:
    breaker = CircuitBreaker(BreakerPolicy())
    assert record_all(breaker, T0, [FAILURE] * 9) == [None] * 9
    assert state(breaker) == "closed"
    assert breaker.allow(T0) == (SEND, None)


def test_under_70_percent_failed_it_stays_closed() -> None:
    breaker = CircuitBreaker(BreakerPolicy())
    assert record_all(breaker, T0, [SUCCESS] * 4 + [FAILURE] * 6) == [None] * 10  # 60 %
    assert record_all(breaker, T0, [FAILURE] * 3) == [None] * 3  # 9 of 13: 69 %
    assert breaker.record(T0, FAILURE) == "open"  # 10 of 14: 71 %


def test_the_attempt_that_reaches_the_minimum_opens_it_even_when_it_succeeded() -> None:
    """Stated: at least M attempts counted and at least R of them failed opens it —
    whichever attempt makes it so."""
    breaker = CircuitBreaker(BreakerPolicy())
    record_all(breaker, T0, [FAILURE] * 9)
    assert breaker.record(T0, SUCCESS) == "open"  # 9 of 10 failed
    assert breaker.failing_since == T0


def test_permanent_failures_are_not_counted() -> None:
    breaker = CircuitBreaker(BreakerPolicy())
    record_all(breaker, T0, [FAILURE] * 9 + [PERMANENT] * 50)
    assert state(breaker) == "closed"  # still 9 attempts, not 59
    assert breaker.record(T0, FAILURE) == "open"


def test_permanent_failures_do_not_dilute_the_ratio() -> None:
    breaker = CircuitBreaker(BreakerPolicy())
    record_all(breaker, T0, [SUCCESS] * 3 + [PERMANENT] * 20 + [FAILURE] * 6)
    assert breaker.record(T0, FAILURE) == "open"  # 7 of 10 counted


def test_the_window_counts_whole_seconds() -> None:
    breaker = CircuitBreaker(BreakerPolicy(window=60))
    record_all(breaker, T0 + 0.9, [FAILURE] * 9)
    assert breaker.record(T0 + 59.99, FAILURE) == "open"  # second 59 is within 60 of second 0

    breaker = CircuitBreaker(BreakerPolicy(window=60))
    record_all(breaker, T0 + 0.1, [FAILURE] * 9)
    assert breaker.record(T0 + 60.0, FAILURE) is None  # second 0 left the window
    assert state(breaker) == "closed"


def test_open_defers_until_the_open_period_passed_then_sends_one_probe() -> None:
    breaker = opened(T0)
    assert breaker.allow(T0) == (DEFER, None)
    assert breaker.allow(T0 + 29.9) == (DEFER, None)
    assert breaker.allow(T0 + 30) == (PROBE, "half_open")
    assert state(breaker) == "half_open"
    assert breaker.allow(T0 + 30) == (DEFER, None)  # the others wait for the probe
    assert breaker.allow(T0 + 30 + PROBE_TIMEOUT - 0.1) == (DEFER, None)


def test_a_failed_probe_doubles_the_open_period_up_to_600_seconds() -> None:
    breaker = opened(T0)
    now = T0
    periods = []
    for _ in range(8):
        period = 1.0
        while breaker.allow(now + period) == (DEFER, None):
            period += 1.0
        now += period
        assert state(breaker) == "half_open"
        periods.append(period)
        assert breaker.record(now, FAILURE, probe=True) == "open"
    assert periods == [30, 60, 120, 240, 480, 600, 600, 600]
    assert breaker.failing_since == T0


def test_a_successful_probe_closes_it_and_starts_afresh() -> None:
    breaker = opened(T0)
    assert breaker.allow(T0 + 30) == (PROBE, "half_open")
    assert breaker.record(T0 + 30, FAILURE, probe=True) == "open"  # open for 60 s now
    assert breaker.allow(T0 + 90) == (PROBE, "half_open")
    assert breaker.record(T0 + 91, SUCCESS, probe=True) == "closed"
    assert state(breaker) == "closed"
    assert breaker.failing_since is None
    assert breaker.open_seconds(T0 + 100) == 0.0
    assert breaker.allow(T0 + 91) == (SEND, None)
    # A new window: nine failures do not open it, and the open period is back to 30 s.
    assert record_all(breaker, T0 + 92, [FAILURE] * 9) == [None] * 9
    assert breaker.record(T0 + 92, FAILURE) == "open"
    assert breaker.allow(T0 + 121.9) == (DEFER, None)
    assert breaker.allow(T0 + 122) == (PROBE, "half_open")


def test_a_permanent_answer_to_the_probe_closes_it() -> None:
    breaker = opened(T0)
    breaker.allow(T0 + 30)
    assert breaker.record(T0 + 30, PERMANENT, probe=True) == "closed"
    assert breaker.failing_since is None


def test_a_lost_probe_is_replaced_after_the_probe_timeout() -> None:
    breaker = opened(T0)
    assert breaker.allow(T0 + 30) == (PROBE, "half_open")
    assert breaker.allow(T0 + 30 + PROBE_TIMEOUT - 0.5) == (DEFER, None)
    assert breaker.allow(T0 + 30 + PROBE_TIMEOUT) == (PROBE, None)  # still half-open
    assert state(breaker) == "half_open"
    assert breaker.allow(T0 + 30 + PROBE_TIMEOUT) == (DEFER, None)  # one probe at a time
    assert breaker.record(T0 + 100, SUCCESS, probe=True) == "closed"


def test_results_of_attempts_under_way_when_it_opened_change_nothing() -> None:
    breaker = opened(T0)
    for result in (SUCCESS, PERMANENT, FAILURE):
        assert breaker.record(T0 + 1, result) is None
    assert state(breaker) == "open"
    assert breaker.allow(T0 + 29) == (DEFER, None)  # the open period did not move
    assert breaker.allow(T0 + 30) == (PROBE, "half_open")
    # While half-open only the probe decides.
    assert breaker.record(T0 + 31, SUCCESS) is None
    assert breaker.record(T0 + 31, FAILURE) is None
    assert state(breaker) == "half_open"
    assert breaker.record(T0 + 32, SUCCESS, probe=True) == "closed"
    # Nothing recorded while it was not closed is in the new window.
    assert record_all(breaker, T0 + 33, [FAILURE] * 9) == [None] * 9


def test_failing_since_stays_through_half_open_cycles_and_clears_on_close() -> None:
    breaker = opened(T0)
    now = T0
    for period in (30, 60, 120):
        now += period
        breaker.allow(now)
        assert breaker.failing_since == T0
        breaker.record(now, FAILURE, probe=True)
        assert breaker.failing_since == T0
        assert breaker.open_seconds(now) == now - T0
    now += 240
    breaker.allow(now)
    breaker.record(now, SUCCESS, probe=True)
    assert breaker.failing_since is None
    assert breaker.open_seconds(now) == 0.0
