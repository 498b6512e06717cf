"""Giving revoked partitions back: their in-flight events first, within a deadline.

When the group takes partitions away, the consumer thread waits (in its revoke
callback) for a future this module resolves with the partitions' final
committable offsets. It resolves once every consumed event of those partitions
is settled, so the hand-back commits them all and the next owner delivers
nothing twice. Past ``drain_seconds`` the revoked partitions' *queued* events
are handed back undelivered (the next owner resumes at the lowest unfinished
offset) and only the requests already under way are waited for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.commands import TP
from stream_wfm.pipeline.lanes import Dispatcher, Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.work import Work

log = logging.getLogger(__name__)

__all__ = ["Handback"]

_Waiter = tuple[list[PartitionTracker], concurrent.futures.Future[dict[TP, int]]]


class Handback:
    """Pending hand-backs of revoked partitions. Runs on the event loop."""

    def __init__(self, backpressure: Backpressure, drain_seconds: float) -> None:
        self._backpressure = backpressure
        self._drain_seconds = drain_seconds
        self._waiters: list[_Waiter] = []
        self._closing = False

    def start(
        self, trackers: list[PartitionTracker], dispatcher: Dispatcher
    ) -> concurrent.futures.Future[dict[TP, int]]:
        """Hand ``trackers`` (already marked revoked) back once their events are settled;
        past the deadline, take their queued jobs out of ``dispatcher``."""
        future: concurrent.futures.Future[dict[TP, int]] = concurrent.futures.Future()
        self._waiters.append((trackers, future))
        self.check()
        if not future.done():
            asyncio.get_running_loop().call_later(
                self._drain_seconds, self._hand_back_queued, trackers, dispatcher
            )
        return future

    @property
    def waiting(self) -> bool:
        return bool(self._waiters)

    def check(self) -> None:
        """Resolve the hand-backs whose partitions have nothing in flight any more (all of
        them when closing)."""
        still = []
        for trackers, future in self._waiters:
            if future.done():
                continue
            if self._closing or all(t.in_flight == 0 for t in trackers):
                offsets = {}
                for t in trackers:
                    offset = t.committable()
                    if offset is not None:
                        offsets[(t.topic, t.partition)] = offset
                future.set_result(offsets)
            else:
                still.append((trackers, future))
        self._waiters = still

    def close(self) -> None:
        """Shutting down: answer every hand-back, now and later, with what is finished."""
        self._closing = True
        self.check()

    def _hand_back_queued(self, trackers: list[PartitionTracker], dispatcher: Dispatcher) -> None:
        revoked = set(map(id, trackers))

        def is_revoked(job: Job) -> bool:
            work: Work = job.context
            return id(work.tracker) in revoked

        dropped = dispatcher.discard(is_revoked)
        if dropped:
            log.warning(
                "revoked partitions did not drain in time; handing queued events back",
                extra={"events": len(dropped)},
            )
        for job in dropped:
            work = job.context
            work.tracker.abandon(work.offset)
        self._backpressure.finished(len(dropped))
        self.check()
