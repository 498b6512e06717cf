"""After a delivery attempt: count it, tell the endpoint's breaker, log a failure, and
settle it; and deferrals, which are settled without an attempt.

The lanes (:mod:`stream_wfm.pipeline.lanes`) report each attempt's outcome
here. Delivered work is finished; anything else is settled as the retry policy
says (:func:`stream_wfm.pipeline.settle.after_attempt`), with the account's
*current* ``max_retries``; a failed probe of a half-open breaker is deferred
without spending a retry (docs/contract.md §10). Metric children are bound once
per label set and cached (no label lookup per event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from stream_wfm.delivery.outcome import DEFERRAL_REASONS, DEFERRALS, Outcome, OutcomeKind
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.lanes import Dispatcher, Job
from stream_wfm.pipeline.order import KeyOrder
from stream_wfm.pipeline.settle import Defer, Retry, Settler, after_attempt
from stream_wfm.pipeline.work import Work

log = logging.getLogger(__name__)

_DELIVERED: Final = OutcomeKind.DELIVERED
#: An event deferred by an open breaker comes back this long after a probe may go.
PROBE_MARGIN: Final = 1.0

__all__ = ["Attempts"]


class Attempts:
    """Handles the outcome of every attempt (and of every deferral). Runs on the loop."""

    def __init__(
        self,
        *,
        store: ConfigStore[TemplatedEntry],
        settler: Settler,
        endpoints: Endpoints,
        order: KeyOrder,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._settler = settler
        self._endpoints = endpoints
        self._order = order
        #: The lanes, to take a failed event's followers out of (set once they exist).
        self.dispatcher: Dispatcher | None = None
        self._deferred = {r: metrics.events_deferred.labels(r) for r in DEFERRAL_REASONS}
        self._metrics = metrics
        self._clock = clock
        self._latency = {k.value: metrics.end_to_end_latency.labels(k.value) for k in EventKind}
        self._duration = {k.value: metrics.delivery_duration.labels(k.value) for k in EventKind}
        self._counted: dict[tuple[EventKind, OutcomeKind, str], Any] = {}

    def on_outcome(self, job: Job, outcome: Outcome, elapsed: float) -> None:
        """The lanes' outcome handler: attempt ``job.attempt`` ended with ``outcome``."""
        work: Work = job.context
        event = work.event
        assert event is not None
        kind = event.kind  # a StrEnum: looks up the dicts keyed by its value, without .value
        self._duration[kind].observe(elapsed)
        self.count(kind, outcome)
        now = self._clock()  # one clock read for the breaker and the latency
        if outcome.kind is _DELIVERED:
            endpoint = work.endpoint
            if endpoint is not None and not job.probe:
                # Counted once per loop turn and endpoint (Endpoints.flush), not per event.
                n = endpoint.unflushed
                endpoint.unflushed = n + 1
                if not n:
                    self._endpoints.succeeded_later(endpoint)
            else:
                self._endpoints.record(event.account_id, kind, outcome, job.probe, now)
            ts = work.source.timestamp_ms
            if ts is not None:
                self._latency[kind].observe(max(0.0, now - ts / 1000))
            self._settler.finish(work)
            return
        self._endpoints.record(event.account_id, kind, outcome, job.probe, now)
        entry = self._store.get(event.account_id)
        max_retries = 0 if entry is None else entry.max_retries
        log.info(
            "delivery failed",
            extra={
                "account_id": event.account_id,
                "event_id": event.event_id,
                "attempt": job.attempt,
                "outcome": outcome.kind.value,
                "status": outcome.status,
                "error": outcome.error,
            },
        )
        if job.probe and outcome.kind is OutcomeKind.RETRYABLE:
            # The breaker opened again; the probe's event waits without spending a retry.
            self.defer(work, job.attempt, "circuit_open")
        else:
            settlement = after_attempt(job.attempt, outcome, max_retries)
            self._settler.settle(work, settlement)
            if not isinstance(settlement, Retry | Defer):
                return
        self._followers_wait(job)

    def _followers_wait(self, job: Job) -> None:
        """``job``'s event went to wait in a retry tier: the later events of its key queued
        behind it in its lane wait behind it there (docs/contract.md §11)."""
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        source = job.context.source
        followers = dispatcher.take_followers(
            job,
            lambda queued: (
                queued.context.source.topic == source.topic
                and queued.context.source.partition == source.partition
            ),
        )
        tp = (source.topic, source.partition)
        for follower in followers:
            work: Work = follower.context
            waiting = self._order.ahead(tp, follower.order_key, work.source.offset)
            to = None if waiting is None else (waiting.tier, waiting.due_ms)
            self.defer(work, follower.attempt, "order", to)

    def defer(
        self, work: Work, attempt: int, reason: str, to: tuple[int, int] | None = None
    ) -> None:
        """Attempt ``attempt`` of ``work`` is not made now, for ``reason`` (one of
        ``DEFERRAL_REASONS``): counted, then deferred to a retry tier (``to``: the tier
        and due time in Unix ms, for an event behind an earlier one of its key)."""
        event = work.event
        assert event is not None
        self._deferred[reason].inc()
        self._endpoints.deferred(event.account_id, event.kind)
        outcome = DEFERRALS[reason]
        if reason == "circuit_open" and to is None:
            wait = self._endpoints.probe_due_in(event.account_id, event.kind)
            if wait is not None:
                # Back when the breaker lets its next probe through, not after every
                # first-tier delay: an outage costs one record per event and probe
                # period, not one per first-tier delay (docs/contract.md §10).
                outcome = replace(outcome, retry_after=wait + PROBE_MARGIN)
        self._settler.settle(work, Defer(attempt, outcome, to))

    def count(self, kind: EventKind, outcome: Outcome) -> None:
        """``stream_wfm_deliveries_total`` + 1, through a cache of bound children (Enum's
        ``.value`` is a descriptor call: the StrEnum members themselves are the keys)."""
        key = (kind, outcome.kind, outcome.status_class)
        child = self._counted.get(key)
        if child is None:
            labels = (kind.value, outcome.kind.value, outcome.status_class)
            child = self._counted[key] = self._metrics.deliveries.labels(*labels)
        child.inc()
