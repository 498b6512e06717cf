"""The circuit breaker of one endpoint (docs/contract.md §10), as a pure state machine.

Time is passed in (Unix seconds); nothing here waits, logs or counts metrics. With
the policy ``window`` (W), ``min_attempts`` (M), ``failure_ratio`` (R),
``open_seconds`` (O) and :data:`MAX_OPEN_SECONDS`:

* **closed**: every event is sent (:attr:`Admission.SEND`). Each attempt's result is
  recorded: a *failure* is a retryable one (timeout, connection error, 408, 425, 429,
  5xx); a success is a 2xx; a permanent failure (other 4xx, 3xx, a refused
  destination) is not counted at all. When, over the last W seconds, at least M
  attempts were counted and at least R of them failed, the breaker opens. The count
  is kept in one-second buckets, so "the last W seconds" is exact to the second.
* **open**: nothing is sent (:attr:`Admission.DEFER`) until the open period — O
  seconds the first time — has passed; the first event asked about after that makes
  the breaker **half-open** and is sent as the probe (:attr:`Admission.PROBE`).
* **half_open**: other events are deferred while the probe is out. The probe's result
  decides: a success — or a permanent failure, which is an answer from a reachable
  endpoint — closes the breaker (a new window, the open period back to O); a
  retryable failure opens it again for twice the last open period, at most
  :data:`MAX_OPEN_SECONDS`. A probe whose result never comes back (its event was
  handed to another instance by a rebalance) is replaced by a new one after
  :data:`PROBE_TIMEOUT` seconds.
* Results of attempts that were already under way when the breaker opened are
  counted in no window and change no state: only a probe closes an open breaker.

``failing_since`` is when the breaker opened from closed; it stays until the breaker
closes, so ``now - failing_since`` is how long the endpoint has failed without a
successful probe (what auto-disable measures).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

from stream_wfm.health.records import BreakerState

__all__ = [
    "MAX_OPEN_SECONDS",
    "PROBE_TIMEOUT",
    "Admission",
    "BreakerPolicy",
    "CircuitBreaker",
    "Result",
]

#: The longest open period (docs/contract.md §10).
MAX_OPEN_SECONDS: Final = 600.0
#: Seconds after which a probe with no result is replaced by a new one (longer than
#: the longest request timeout a config allows, 30 s).
PROBE_TIMEOUT: Final = 60.0


class Admission(enum.Enum):
    SEND = "send"
    PROBE = "probe"
    DEFER = "defer"


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # retryable
    PERMANENT = "permanent"


# Enum members as module constants: in Python 3.11 ``Result.SUCCESS`` runs a descriptor
# (Python code, ~60 ns) where a global lookup is a cached load.
_SUCCESS: Final = Result.SUCCESS
_FAILURE: Final = Result.FAILURE
_PERMANENT: Final = Result.PERMANENT


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window: float = 60.0
    min_attempts: int = 10
    failure_ratio: float = 0.7
    open_seconds: float = 30.0


class CircuitBreaker:
    """One endpoint's breaker. ``allow`` before sending, ``record`` after an attempt;
    both return the state entered when they changed it, else None."""

    __slots__ = (
        "_attempts",
        "_bucket_end",
        "_buckets",
        "_failures",
        "_open_for",
        "_policy",
        "_probe_sent_at",
        "_reopen_at",
        "failing_since",
        "state",
    )

    def __init__(self, policy: BreakerPolicy) -> None:
        self._policy = policy
        self.state: BreakerState = "closed"
        self.failing_since: float | None = None
        self._buckets: deque[list[int]] = deque()  # [second, attempts, failures]
        self._bucket_end = 0.0  # when the newest bucket's second ends
        self._attempts = 0
        self._failures = 0
        self._open_for = policy.open_seconds
        self._reopen_at = 0.0
        self._probe_sent_at: float | None = None

    def allow(self, now: float) -> tuple[Admission, BreakerState | None]:
        state = self.state
        if state == "closed":
            return Admission.SEND, None
        if state == "open":
            if now < self._reopen_at:
                return Admission.DEFER, None
            self.state = "half_open"
            self._probe_sent_at = now
            return Admission.PROBE, "half_open"
        sent = self._probe_sent_at
        if sent is not None and now - sent < PROBE_TIMEOUT:
            return Admission.DEFER, None
        self._probe_sent_at = now  # the last probe was lost: send another
        return Admission.PROBE, None

    def record(self, now: float, result: Result, probe: bool = False) -> BreakerState | None:
        if result is _SUCCESS and not probe and self.state == "closed":
            # The common case, inline: a success in the current second's bucket (a float
            # comparison: int(now) would allocate).
            if now < self._bucket_end:
                self._buckets[-1][1] += 1
                self._attempts += 1
            else:
                self._count(now, False)
            # A success can open it too: the one that brings the window to min_attempts.
            return self._trip(now) if self._failures else None
        if probe and self.state == "half_open":
            self._probe_sent_at = None
            if result is _FAILURE:
                self._open_for = min(self._open_for * 2, MAX_OPEN_SECONDS)
                return self._open(now)
            return self._close()
        if self.state != "closed" or result is _PERMANENT:
            return None
        self._count(now, result is _FAILURE)
        return self._trip(now)

    def successes(self, now: float, n: int) -> BreakerState | None:
        """``n`` attempts that are not probes succeeded, counted at ``now`` (the endpoints
        count successes per loop turn, :meth:`Endpoints.flush
        <stream_wfm.health.endpoints.Endpoints.flush>`); ignored unless closed, as
        :meth:`record` ignores them."""
        if self.state != "closed":
            return None
        self._count(now, False, n)
        # Successes can open it too: those that bring the window to min_attempts.
        return self._trip(now) if self._failures else None

    def probe_due_in(self, now: float) -> float | None:
        """Seconds until an open breaker lets a probe through (0 once it may); None when
        it is not open."""
        if self.state != "open":
            return None
        return max(0.0, self._reopen_at - now)

    def open_seconds(self, now: float) -> float:
        """How long the endpoint has failed without a successful probe; 0 when closed."""
        since = self.failing_since
        return 0.0 if since is None else max(0.0, now - since)

    def _count(self, now: float, failed: bool, n: int = 1) -> None:
        second = int(now)
        buckets = self._buckets
        horizon = second - self._policy.window
        while buckets and buckets[0][0] <= horizon:
            _s, attempts, failures = buckets.popleft()
            self._attempts -= attempts
            self._failures -= failures
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
        else:
            bucket = [second, 0, 0]
            buckets.append(bucket)
            self._bucket_end = second + 1.0
        bucket[1] += n
        self._attempts += n
        if failed:
            bucket[2] += 1
            self._failures += 1

    def _trip(self, now: float) -> BreakerState | None:
        """Open it when the window holds enough attempts and enough of them failed."""
        policy = self._policy
        if (
            self._attempts >= policy.min_attempts
            and self._failures >= policy.failure_ratio * self._attempts
        ):
            self.failing_since = now
            self._open_for = policy.open_seconds
            return self._open(now)
        return None

    def _open(self, now: float) -> BreakerState:
        self.state = "open"
        self._reopen_at = now + self._open_for
        self._buckets.clear()
        self._bucket_end = 0.0
        self._attempts = self._failures = 0
        return "open"

    def _close(self) -> BreakerState:
        self.state = "closed"
        self.failing_since = None
        self._open_for = self._policy.open_seconds
        return "closed"
