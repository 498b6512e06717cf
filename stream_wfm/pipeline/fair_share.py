"""Fair share: a slow endpoint never holds the other accounts' input (docs/contract.md §10).

Every :data:`INTERVAL` seconds while the shared buffer is under pressure (half of
``STREAM_WFM_MAX_BUFFERED_EVENTS`` pending, see
:mod:`~stream_wfm.pipeline.backpressure`) — spacing out to :data:`QUIET_INTERVAL` while
scans find nothing to move, for a scan goes through every queued event —
:meth:`FairShare.check` looks at the events queued in the lanes, per endpoint
(``account_id`` + kind). With *n* endpoints holding queued events, an endpoint's share
is a ``1 / (n + 1)`` part of half the buffer (the ``+ 1`` keeps room for the accounts
whose events are still in the input). An endpoint is *moved aside* when it holds more
than its share **and** it is not keeping up: its oldest queued event has waited more
than :data:`LAGGING_AFTER` seconds and, at the rate it answered over its last one to two
seconds of activity, its queue would take more than :data:`DRAIN_LIMIT` seconds to
drain. A busy endpoint that answers fast drains a deep queue in moments and is never
moved (moving a healthy endpoint's catch-up backlog to a retry tier only brings it back
later, at the cost of a write and a read). Of a moved endpoint, each lane keeps its
first events (the share spread over the endpoint's lanes, at least one) and the rest
are returned, in lane order, for the pipeline to defer to the first retry tier without
spending a retry; until the next check its new events are deferred too
(:meth:`FairShare.moved_aside`). Deferred events come back from the retry tier and
take their turn again, so a slow endpoint's events all arrive, just later.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final

from stream_wfm.events import EventKind
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.lanes import Dispatcher, Job

__all__ = ["DRAIN_LIMIT", "INTERVAL", "LAGGING_AFTER", "FairShare", "endpoint_of"]

#: Seconds between two checks (they cost nothing while the buffer is not under pressure).
INTERVAL: Final = 0.25
#: After scans that found nothing to move, the scans space out up to this many seconds.
QUIET_INTERVAL: Final = 4.0
#: An endpoint whose oldest queued event waited longer than this may be lagging...
LAGGING_AFTER: Final = 1.5
#: ...and it is, when draining its queue at its recent rate would take longer than this.
DRAIN_LIMIT: Final = 5.0

EndpointKey = tuple[str, EventKind]


def endpoint_of(job: Job) -> EndpointKey:
    """The endpoint of a job the submitter queued (its context is the event's work)."""
    work = job.context
    return (work.event.account_id, work.kind)


class FairShare:
    """Finds the endpoints over their share of the buffer. Runs on the event loop."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        backpressure: Backpressure,
        endpoints: Endpoints,
        max_buffered: int,
        clock: Callable[[], float],
        lagging_after: float = LAGGING_AFTER,
    ) -> None:
        """``clock``: the dispatcher's clock (jobs' ``queued_at``)."""
        self._dispatcher = dispatcher
        self._backpressure = backpressure
        self._endpoints = endpoints
        self._room = max(1, max_buffered // 2)
        self._clock = clock
        self._lagging_after = lagging_after
        #: The endpoints moved aside by the last check (see :meth:`moved_aside`).
        self.moved: set[EndpointKey] = set()
        self._quiet = INTERVAL / 2  # doubled after each scan that moved nothing
        self._next_scan = 0.0

    def moved_aside(self, account_id: str, kind: EventKind) -> bool:
        """Was this endpoint moved aside by the last check (and is the buffer still under
        pressure)? Its new events are then deferred rather than queued. (The submitter
        calls it only when :attr:`moved` is not empty.)"""
        return (
            bool(self.moved)
            and (account_id, kind) in self.moved
            and self._backpressure.under_pressure()
        )

    def check(self) -> list[Job]:
        """The queued jobs to move aside now, in lane order (see the module docstring)."""
        if not self._backpressure.under_pressure():
            self.moved.clear()
            return []
        now = self._clock()
        if now < self._next_scan:
            return []
        counts: dict[EndpointKey, int] = {}
        oldest: dict[EndpointKey, float] = {}
        lanes: dict[EndpointKey, set[int]] = {}
        for lane_id, job in self._dispatcher.queued_jobs():
            key = endpoint_of(job)
            if key in counts:
                counts[key] += 1
                lanes[key].add(lane_id)
            else:
                counts[key] = 1
                oldest[key] = job.queued_at  # lanes are FIFO: the first seen is a lane's oldest
                lanes[key] = {lane_id}
            if job.queued_at < oldest[key]:
                oldest[key] = job.queued_at
        share = max(1, self._room // (len(counts) + 1))
        moved = {
            key
            for key, count in counts.items()
            if count > share
            and now - oldest[key] > self._lagging_after
            and self._drain_seconds(key, count) > DRAIN_LIMIT
        }
        self.moved = moved
        if not moved:
            # Nothing lags (e.g. a busy endpoint catching up): look again later and later,
            # up to QUIET_INTERVAL, for the scan goes through every queued event.
            self._quiet = min(QUIET_INTERVAL, self._quiet * 2)
            self._next_scan = now + self._quiet - INTERVAL / 2
            return []
        self._quiet = INTERVAL / 2
        limits: dict[Hashable, int] = {key: max(1, share // len(lanes[key])) for key in moved}
        return self._dispatcher.trim(limits, endpoint_of)

    def _drain_seconds(self, key: EndpointKey, queued: int) -> float:
        endpoint = self._endpoints.get(*key)
        rate = 0.0 if endpoint is None else endpoint.rate(self._endpoints.now())
        return queued / rate if rate > 0 else float("inf")
