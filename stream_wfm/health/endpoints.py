"""Every endpoint this instance delivers to: its breaker and what it reports.

An *endpoint* is one integration URL, ``(account_id, kind)`` (docs/contract.md §10).
:class:`Endpoints` keeps, for each endpoint in use, its
:class:`~stream_wfm.health.breaker.CircuitBreaker` and the figures a health record
carries (attempts, failures and deferrals over the last 5 minutes in 10-second
buckets, the last success and failure, the last error). It runs on the event loop
and is asked once per event (:meth:`Endpoints.admit`, its common case inline in the
submitter) and told of every attempt: a failure, a probe's answer or an attempt of an
endpoint found not closed at once (:meth:`Endpoints.record`), the other successes once
per endpoint and loop turn (:meth:`Endpoints.flush`), which every other method does
first, so that nothing reads figures without them.

A new config record for the account (its ``version``, where it was read on the config
topic) starts the endpoint afresh: a fixed URL or a re-enable deserves a closed
breaker, and a new failure period. An endpoint with a closed breaker that saw nothing
for 5 minutes is forgotten, so memory follows the endpoints in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from stream_wfm.delivery.outcome import Outcome, OutcomeKind
from stream_wfm.events import EventKind
from stream_wfm.health.breaker import Admission, BreakerPolicy, CircuitBreaker, Result
from stream_wfm.health.records import BreakerState, EndpointReport, iso_utc
from stream_wfm.ops.metrics import Metrics

__all__ = ["REPORT_SECONDS", "Endpoint", "Endpoints"]

#: The span of a health record's counts (attempts, failures, deferred).
REPORT_SECONDS: Final = 300
_BUCKET_SECONDS: Final = 10
#: The shortest span a rate is measured over (seconds).
_MIN_RATE_SPAN: Final = 0.5

Version = tuple[int, int] | None
# Enum members as module constants: in Python 3.11 ``EventKind.AGENT`` runs a descriptor
# (Python code, ~60 ns a time) where a global lookup is a cached load.
_AGENT: Final = EventKind.AGENT
_DELIVERED: Final = OutcomeKind.DELIVERED
_RETRYABLE: Final = OutcomeKind.RETRYABLE
_SUCCESS: Final = Result.SUCCESS
_FAILURE: Final = Result.FAILURE
_PERMANENT: Final = Result.PERMANENT
Key = tuple[str, EventKind]


class Endpoint:
    """One endpoint's breaker and figures."""

    __slots__ = (
        "account_id",
        "breaker",
        "bucket_end",
        "buckets",
        "disabling",
        "kind",
        "last_active",
        "last_error",
        "last_failure_at",
        "last_success_at",
        "prev_count",
        "prev_start",
        "sec_count",
        "sec_end",
        "started",
        "touched",
        "unflushed",
        "version",
    )

    def __init__(self, account_id: str, kind: EventKind, version: Version, policy: BreakerPolicy):
        self.account_id = account_id
        self.kind = kind
        self.version = version
        self.breaker = CircuitBreaker(policy)
        #: [bucket start, attempts, failures, deferred], oldest first.
        self.buckets: list[list[int]] = []
        self.bucket_end = 0.0  # when the newest bucket ends
        self.last_success_at: float | None = None
        self.last_failure_at: float | None = None
        self.last_error: str | None = None
        self.last_active = 0.0
        self.started = 0.0  # when this instance began to deliver to it (this config)
        # The answer rate (fair share): attempts in a one-second window that opens with the
        # first attempt after a pause, and in the window before it when they are adjacent.
        self.sec_end = 0.0
        self.sec_count = 0
        self.prev_start = 0.0
        self.prev_count = 0
        self.touched = False  # something happened since the last report
        #: Successful attempts not counted yet: counted once per loop turn (Endpoints.flush).
        self.unflushed = 0
        self.disabling = False  # auto-disable under way

    def count(self, now: float, attempts: int, failures: int, deferred: int) -> None:
        start = int(now) // _BUCKET_SECONDS * _BUCKET_SECONDS
        buckets = self.buckets
        if not buckets or buckets[-1][0] != start:
            horizon = start - REPORT_SECONDS
            while buckets and buckets[0][0] <= horizon:
                buckets.pop(0)
            buckets.append([start, 0, 0, 0])
            self.bucket_end = start + float(_BUCKET_SECONDS)
        bucket = buckets[-1]
        bucket[1] += attempts
        bucket[2] += failures
        bucket[3] += deferred
        self.last_active = now
        self.touched = True
        if attempts:
            if now >= self.sec_end:
                self.roll(now)
            self.sec_count += attempts

    def roll(self, now: float) -> None:
        """The current one-second window is over (``now`` is at or past its end)."""
        if now < self.sec_end + 1.0:  # the next window follows at once: keep this one
            self.prev_count = self.sec_count
            self.prev_start = self.sec_end - 1.0
            self.sec_end += 1.0
        else:  # a pause: a new window opens now
            self.prev_count = 0
            self.sec_end = now + 1.0
        self.sec_count = 0

    def rate(self, now: float) -> float:
        """Attempts per second over the last one to two seconds of activity: the current
        one-second window and the one before it when adjacent, divided by the time since
        they opened (so the rate falls while the endpoint stays silent). Windows open at
        the first attempt after a pause, not at clock-aligned seconds: a burst after a
        pause is measured over its own time, and a fast endpoint never looks slow."""
        if self.sec_end == 0.0:
            return 0.0
        if self.prev_count:
            count, since = self.prev_count + self.sec_count, self.prev_start
        else:
            count, since = self.sec_count, self.sec_end - 1.0
        return count / max(_MIN_RATE_SPAN, now - since)

    def report(self, now: float) -> EndpointReport:
        horizon = int(now) - REPORT_SECONDS
        recent = [b for b in self.buckets if b[0] > horizon]
        since = self.breaker.failing_since
        return EndpointReport(
            state=self.breaker.state,
            attempts_5m=sum(b[1] for b in recent),
            failures_5m=sum(b[2] for b in recent),
            deferred_5m=sum(b[3] for b in recent),
            last_success_at=_iso(self.last_success_at),
            last_failure_at=_iso(self.last_failure_at),
            last_error=self.last_error,
            failing_since=_iso(since),
        )


def _iso(when: float | None) -> str | None:
    return None if when is None else iso_utc(when)


class Endpoints:
    """The endpoints in use on this instance. Runs on the event loop."""

    def __init__(
        self,
        policy: BreakerPolicy,
        metrics: Metrics,
        clock: Callable[[], float],
        on_open: Callable[[Endpoint], None] | None = None,
    ) -> None:
        """``on_open(endpoint)`` is told when an endpoint's breaker opens (its queued
        events are to be deferred)."""
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        # One dict per kind, keyed by account_id: a str key hashes from its cache, where a
        # (str, EventKind) tuple would call Enum.__hash__ (Python code) once per event.
        self._agent: dict[str, Endpoint] = {}
        self._call: dict[str, Endpoint] = {}
        #: The endpoints by kind, then ``account_id``, for reading only.
        self.agent: Mapping[str, Endpoint] = self._agent
        self.call: Mapping[str, Endpoint] = self._call
        self._open: dict[Key, Endpoint] = {}  # breaker open or half-open
        self.on_open = on_open
        self._unflushed: list[Endpoint] = []  # endpoints with successes to count
        self._flush_scheduled = False
        self._transitions = {
            state: metrics.circuit_transitions.labels(state)
            for state in ("closed", "open", "half_open")
        }
        metrics.circuits_open.set_function(lambda: len(self._open))
        metrics.longest_open_circuit.set_function(self.longest_open)

    def admit(self, account_id: str, kind: EventKind, version: Version) -> Admission:
        """May an event of this endpoint be sent now (``version``: the config it is sent
        with)? The submitter answers the common case itself from :attr:`agent` and
        :attr:`call`: an endpoint known under ``version`` with a closed breaker gets
        ``SEND``."""
        if self._unflushed:
            self.flush()
        endpoint = self._table(kind).get(account_id)
        if endpoint is None or endpoint.version != version:
            endpoint = self._start(account_id, kind, version)
        breaker = endpoint.breaker
        if breaker.state == "closed":
            return Admission.SEND
        admission, entered = breaker.allow(self._clock())
        if entered is not None:
            self._entered(endpoint, entered)
        return admission

    def record(
        self,
        account_id: str,
        kind: EventKind,
        outcome: Outcome,
        probe: bool,
        now: float | None = None,
    ) -> None:
        """An attempt to the endpoint ended with ``outcome`` (``now``: the clock's time, when
        the caller has read it already)."""
        if self._unflushed:
            self.flush()
        endpoint = (self._agent if kind is _AGENT else self._call).get(account_id)
        if endpoint is None:
            return  # forgotten or restarted meanwhile (a new config)
        if now is None:
            now = self._clock()
        outcome_kind = outcome.kind  # compared by identity: Enum.__hash__ is Python code
        if outcome_kind is _DELIVERED:
            result = _SUCCESS
            endpoint.last_success_at = now
            # endpoint.count(now, 1, 0, 0), inline for the current bucket (once per event; a
            # float comparison: int(now) would allocate)
            if now < endpoint.bucket_end and now < endpoint.sec_end:
                endpoint.buckets[-1][1] += 1
                endpoint.sec_count += 1
                endpoint.last_active = now
                endpoint.touched = True
            else:
                endpoint.count(now, 1, 0, 0)
        else:
            result = _FAILURE if outcome_kind is _RETRYABLE else _PERMANENT
            endpoint.last_failure_at = now
            endpoint.last_error = outcome.error
            endpoint.count(now, 1, 1, 0)  # reported: any failure (the breaker: retryable ones)
        entered = endpoint.breaker.record(now, result, probe)
        if entered is not None:
            self._entered(endpoint, entered)

    def succeeded_later(self, endpoint: Endpoint) -> None:
        """``endpoint.unflushed`` went from 0 to 1: count its successes at the end of this
        loop turn. (The attempts' handler counts a success with ``unflushed += 1`` and
        calls this for the first only: one call per endpoint and loop turn, not one per
        event, docs/design.md.)"""
        self._unflushed.append(endpoint)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Count the successes not counted yet: their endpoints' figures and breakers."""
        self._flush_scheduled = False
        endpoints, self._unflushed = self._unflushed, []
        if not endpoints:
            return
        now = self._clock()
        for endpoint in endpoints:
            n = endpoint.unflushed
            if not n:
                continue
            endpoint.unflushed = 0
            endpoint.last_success_at = now
            endpoint.count(now, n, 0, 0)
            entered = endpoint.breaker.successes(now, n)
            if entered is not None:
                self._entered(endpoint, entered)

    def deferred(self, account_id: str, kind: EventKind, n: int = 1) -> None:
        if self._unflushed:
            self.flush()
        endpoint = self._table(kind).get(account_id)
        if endpoint is not None:
            endpoint.count(self._clock(), 0, 0, n)

    def probe_due_in(self, account_id: str, kind: EventKind) -> float | None:
        """Seconds until the endpoint's open breaker lets a probe through; None when it is
        not open (or not known)."""
        endpoint = self._table(kind).get(account_id)
        return None if endpoint is None else endpoint.breaker.probe_due_in(self._clock())

    def now(self) -> float:
        return self._clock()

    def get(self, account_id: str, kind: EventKind) -> Endpoint | None:
        if self._unflushed:
            self.flush()
        return self._table(kind).get(account_id)

    def failing(self) -> Iterator[Endpoint]:
        """The endpoints whose breaker is open or half-open."""
        if self._unflushed:
            self.flush()
        return iter(list(self._open.values()))

    def longest_open(self) -> float:
        now = self._clock()
        return max((e.breaker.open_seconds(now) for e in self._open.values()), default=0.0)

    def take_reports(self) -> dict[str, dict[str, EndpointReport]]:
        """Per account, the reports of its endpoints that were active since the last call
        or whose breaker is not closed; forgets endpoints idle for 5 minutes."""
        if self._unflushed:
            self.flush()
        now = self._clock()
        reports: dict[str, dict[str, EndpointReport]] = {}
        for table in (self._agent, self._call):
            for account_id, endpoint in list(table.items()):
                if endpoint.touched or endpoint.breaker.state != "closed":
                    endpoint.touched = False
                    report = endpoint.report(now)
                    reports.setdefault(account_id, {})[endpoint.kind.value] = report
                elif now - endpoint.last_active > REPORT_SECONDS:
                    del table[account_id]
        return reports

    def forget(self, endpoint: Endpoint) -> None:
        """Drop ``endpoint`` (its account's config changed): its breaker closes and the next
        event starts it afresh."""
        table = self._table(endpoint.kind)
        if table.get(endpoint.account_id) is endpoint:
            del table[endpoint.account_id]
        key = (endpoint.account_id, endpoint.kind)
        if self._open.get(key) is endpoint:
            del self._open[key]
            self._transitions["closed"].inc()

    def __len__(self) -> int:
        return len(self._agent) + len(self._call)

    def _table(self, kind: EventKind) -> dict[str, Endpoint]:
        return self._agent if kind is _AGENT else self._call

    def _start(self, account_id: str, kind: EventKind, version: Version) -> Endpoint:
        key = (account_id, kind)
        table = self._table(kind)
        old = table.get(account_id)
        endpoint = table[account_id] = Endpoint(account_id, kind, version, self._policy)
        endpoint.last_active = endpoint.started = self._clock()
        if old is not None and self._open.pop(key, None) is not None:
            self._transitions["closed"].inc()  # a new config closes the breaker
        return endpoint

    def _entered(self, endpoint: Endpoint, state: BreakerState) -> None:
        self._transitions[state].inc()
        key = (endpoint.account_id, endpoint.kind)
        endpoint.touched = True
        if state == "closed":
            self._open.pop(key, None)
            return
        self._open[key] = endpoint
        if state == "open" and self.on_open is not None:
            self.on_open(endpoint)
