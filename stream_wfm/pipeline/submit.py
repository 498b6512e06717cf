"""Format → deliver: build an event's request from its account's template and queue it
in its lane; for a due retry, join the account's *current* config first.

A W3C ``traceparent`` (and ``tracestate``) among the input record's Kafka headers is
passed on with the request (:func:`~stream_wfm.delivery.request.trace_context`); a
retry has them from its retry record, so every attempt carries the same.

An event behind an earlier event of its key that waits in a retry tier is deferred
after it (:mod:`stream_wfm.pipeline.order`, docs/contract.md §11). Before an event is
formatted, its endpoint is asked (docs/contract.md §10): an open
circuit breaker, or an endpoint moved aside for holding more than its fair share of
the buffer (:mod:`stream_wfm.pipeline.fair_share`), defers it to a retry tier
without spending a retry; a half-open breaker makes it the probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from stream_wfm.delivery.exceptions import UnformattableEventError
from stream_wfm.delivery.request import trace_context
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind
from stream_wfm.health.breaker import Admission
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.attempts import Attempts
from stream_wfm.pipeline.fair_share import FairShare
from stream_wfm.pipeline.lanes import Dispatcher
from stream_wfm.pipeline.order import KeyOrder
from stream_wfm.pipeline.settle import FINISH, Settler
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.writer import DeadLetter
from stream_wfm.routing import ENDPOINT_DISABLED, decide

log = logging.getLogger(__name__)

# Enum members as module constants: in Python 3.11 ``EventKind.AGENT`` runs a descriptor
# (Python code, ~60 ns a time) where a global lookup is a cached load.
_AGENT: Final = EventKind.AGENT
#: An event deferred behind an earlier one of its key is due at least this much later.
FOLLOW_DELAY_MS: Final = 1000
_DEFER: Final = Admission.DEFER
_PROBE: Final = Admission.PROBE

__all__ = ["Submitter"]


class Submitter:
    """Turns selected work into jobs in the lanes. Runs on the event loop."""

    def __init__(
        self,
        *,
        store: ConfigStore[TemplatedEntry],
        dispatcher: Dispatcher,
        endpoints: Endpoints,
        fair_share: FairShare,
        order: KeyOrder,
        attempts: Attempts,
        settler: Settler,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._endpoints = endpoints
        self._agent_endpoints = endpoints.agent
        self._call_endpoints = endpoints.call
        self._fair_share = fair_share
        self._order = order
        self._attempts = attempts
        self._settler = settler
        self._metrics = metrics
        self._clock = clock
        self._dropped: dict[str, Any] = {}

    def submit(self, work: Work, entry: TemplatedEntry, attempt: int) -> None:
        """Format ``work`` (a selected event) with ``entry``'s template and queue attempt
        number ``attempt``; an event the template cannot encode is dead-lettered."""
        event = work.event
        assert event is not None
        order = self._order
        if order.active and self._behind(order, work, event.order_key, attempt):
            return
        # Endpoints.admit(), its common case inline (once per event): known, closed → SEND.
        table = self._agent_endpoints if event.kind is _AGENT else self._call_endpoints
        endpoint = table.get(event.account_id)
        if (
            endpoint is None
            or endpoint.version != entry.version
            or endpoint.breaker.state != "closed"
        ):
            admission = self._endpoints.admit(event.account_id, event.kind, entry.version)
            if admission is _DEFER:
                self._attempts.defer(work, attempt, "circuit_open")
                return
            probe = admission is _PROBE
            work.endpoint = None
        else:
            probe = False
            work.endpoint = endpoint
        fair_share = self._fair_share
        if fair_share.moved and not probe and fair_share.moved_aside(event.account_id, event.kind):
            self._attempts.defer(work, attempt, "fair_share")
            return
        template = entry.template(event.kind)
        assert template is not None  # routing filtered events without a URL
        headers = work.headers
        try:
            request = template.build(event, trace_context(headers) if headers else None)
        except UnformattableEventError as exc:
            self._settler.settle(work, DeadLetter(exc.reason, attempt - 1, exc.detail))
            return
        if work.first_attempt_ms == 0:
            work.first_attempt_ms = int(self._clock() * 1000)
        # The work is the job (no Job object per attempt).
        work.request = request
        work.order_key = event.order_key
        work.attempt = attempt
        work.probe = probe
        self._dispatcher.submit(work)

    def _behind(self, order: KeyOrder, work: Work, key: str, attempt: int) -> bool:
        """Defer ``work`` behind an earlier event of its key that waits in a retry tier
        (docs/contract.md §11) and return True; else it goes on, and when it waited in a
        tier itself (a due retry or deferral) it no longer does: the key's events that
        come after it queue behind it in its lane."""
        source = work.source
        tp = (source.topic, source.partition)
        now_ms = int(self._clock() * 1000)
        waiting = order.ahead(tp, key, source.offset, now_ms, leave=True)
        if waiting is None:
            return False
        # Due no earlier than the latest waiting record; and not at once, when that one
        # is already due (it is being attempted), so that no event goes round in a loop.
        to = (waiting.tier, max(waiting.due_ms, now_ms + FOLLOW_DELAY_MS))
        self._attempts.defer(work, attempt, "order", to)
        return True

    def resubmit(self, work: Work, attempt: int) -> None:
        """A due retry: send it with the account's *current* config, or drop it when the
        integration is gone, disabled or no longer selects the event; dead-letter it
        (``endpoint_disabled``) when the service disabled the integration for a failing
        endpoint."""
        event = work.event
        assert event is not None
        entry = self._store.get(event.account_id)
        reason = decide(event, entry)
        if reason == ENDPOINT_DISABLED:
            self._settler.settle(work, DeadLetter(ENDPOINT_DISABLED, attempt - 1))
            return
        if reason is not None:
            child = self._dropped.get(reason)
            if child is None:
                child = self._dropped[reason] = self._metrics.retries_dropped.labels(reason)
            child.inc()
            log.info(
                "pending retry dropped by current config",
                extra={
                    "account_id": event.account_id,
                    "event_id": event.event_id,
                    "reason": reason,
                },
            )
            self._settler.settle(work, FINISH)
            return
        assert entry is not None
        self.submit(work, entry, attempt)
