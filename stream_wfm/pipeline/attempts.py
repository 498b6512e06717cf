"""After a delivery attempt: count it, tell the endpoint's breaker, log a failure, and
settle it; and deferrals, which are settled without an attempt.

The lanes (:mod:`stream_wfm.pipeline.lanes`) report each attempt's outcome
here. Delivered work is finished; anything else is settled as the retry policy
says (:func:`stream_wfm.pipeline.settle.after_attempt`), with the account's
*current* ``max_retries``; a failed probe of a half-open breaker is deferred
without spending a retry (docs/contract.md §10). Metric children are bound once
per label set and cached (no label lookup per event). Delivered events are finished
and counted in ``stream_wfm_deliveries_total`` once per loop turn (:meth:`Attempts.flush`),
not one by one.
"""

from __future__ import annotations

import asyncio
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
_AGENT: Final = EventKind.AGENT
_CALL: Final = EventKind.CALL
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
        self._agent_latency = metrics.end_to_end_latency.labels(_AGENT.value)
        self._call_latency = metrics.end_to_end_latency.labels(_CALL.value)
        self._agent_duration = metrics.delivery_duration.labels(_AGENT.value)
        self._call_duration = metrics.delivery_duration.labels(_CALL.value)
        self._counted: dict[tuple[EventKind, OutcomeKind, str], Any] = {}
        # This loop turn's delivered attempts by status class, per kind (flush).
        self._agent_delivered: dict[str, int] = {}
        self._call_delivered: dict[str, int] = {}
        # This loop turn's delivered events, finished together (flush).
        self._delivered: list[Work] = []
        self._flush_scheduled = False

    def on_outcome(self, job: Job, outcome: Outcome, elapsed: float) -> None:
        """The lanes' outcome handler: attempt ``job.attempt`` ended with ``outcome``."""
        work: Work = job.context
        event = work.event
        assert event is not None
        kind = event.kind
        agent = kind is _AGENT  # children bound per kind: no dict keyed by an Enum member
        (self._agent_duration if agent else self._call_duration).observe(elapsed)
        now = self._clock()  # one clock read for the breaker and the latency
        if outcome.kind is _DELIVERED:
            # stream_wfm_deliveries_total: counted per loop turn (flush), not per event.
            counts = self._agent_delivered if agent else self._call_delivered
            status_class = outcome.status_class
            counts[status_class] = counts.get(status_class, 0) + 1
            endpoint = work.endpoint
            if endpoint is not None and not job.probe:
                # Counted once per loop turn and endpoint (Endpoints.flush), not per event.
                n = endpoint.unflushed
                endpoint.unflushed = n + 1
                if not n:
                    self._endpoints.succeeded_later(endpoint)
            else:
                self._endpoints.record(event.account_id, kind, outcome, job.probe, now)
            ts = work.timestamp_ms
            if ts is not None:
                latency = now - ts / 1000
                (self._agent_latency if agent else self._call_latency).observe(
                    latency if latency > 0.0 else 0.0
                )
            # Finished, with the loop turn's other delivered events (flush).
            self._delivered.append(work)
            if not self._flush_scheduled:
                self._schedule_flush()
            return
        self.count(kind, outcome)
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

    def _schedule_flush(self) -> None:
        """Finish and count this loop turn's delivered events at its end (:meth:`flush`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the loop (tests): at once
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Finish the events delivered since the last flush (their offsets, the pending
        count: :meth:`Settler.finish_all`) and add them to
        ``stream_wfm_deliveries_total``: one ``inc`` per kind and status class."""
        self._flush_scheduled = False
        delivered = self._delivered
        if delivered:
            self._delivered = []
            self._settler.finish_all(delivered)
        for kind, counts in ((_AGENT, self._agent_delivered), (_CALL, self._call_delivered)):
            if counts:
                for status_class, n in counts.items():
                    self._child(kind, _DELIVERED, status_class).inc(n)
                counts.clear()

    def count(self, kind: EventKind, outcome: Outcome) -> None:
        """``stream_wfm_deliveries_total`` + 1, through a cache of bound children (Enum's
        ``.value`` is a descriptor call: the StrEnum members themselves are the keys)."""
        self._child(kind, outcome.kind, outcome.status_class).inc()

    def _child(self, kind: EventKind, outcome_kind: OutcomeKind, status_class: str) -> Any:
        key = (kind, outcome_kind, status_class)
        child = self._counted.get(key)
        if child is None:
            labels = (kind.value, outcome_kind.value, status_class)
            child = self._counted[key] = self._metrics.deliveries.labels(*labels)
        return child
