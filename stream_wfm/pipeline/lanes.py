"""Ordered delivery lanes, grouped by destination host (the bulkheads).

Selected events become :class:`Job` objects. Each destination host has up to
``lanes_per_host`` lanes; a job goes to lane ``hash(order_key) % lanes_per_host``
of its host, so one agent's events are delivered one after another, in input
order, while different agents proceed concurrently. A lane is a queue drained
by one worker coroutine that exists only while the lane has work: there is no
task per event. A slow or hanging host fills only its own lanes; other hosts'
lanes keep moving. An overall limit (``max_in_flight``) bounds requests in flight.

A host is *saturated* when it has ``max_queued_per_host`` jobs queued and has
delivered nothing (no 2xx) for ``max_queue_wait`` seconds: it hangs, times
out or fails every request. A busy host that keeps delivering is never
saturated, however deep its queue: moving its events elsewhere would only
bring them back later. The pipeline sheds a saturated host's overflow to a
retry tier while the shared buffer is under pressure (the bulkhead).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from stream_wfm.delivery.outcome import Outcome, OutcomeKind, connection_error_outcome
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Transport

log = logging.getLogger(__name__)


class Job:
    """One delivery attempt waiting in (or running from) a lane."""

    __slots__ = ("attempt", "context", "order_key", "request")

    def __init__(self, request: WebhookRequest, order_key: str, attempt: int, context: Any) -> None:
        self.request = request
        self.order_key = order_key
        self.attempt = attempt
        self.context = context  # owned by whoever submitted the job


OutcomeHandler = Callable[[Job, Outcome, float], None]


class _Host:
    __slots__ = ("delivered_at", "lanes", "queued")

    def __init__(self, now: float) -> None:
        self.lanes: dict[int, deque[Job]] = {}
        self.queued = 0
        self.delivered_at = now  # the last 2xx (or when the host got its first job)


class Dispatcher:
    """Routes jobs to per-host ordered lanes and runs them through the transport."""

    def __init__(
        self,
        transport: Transport,
        on_outcome: OutcomeHandler,
        *,
        lanes_per_host: int,
        max_in_flight: int,
        clock: Callable[[], float],
        max_queued_per_host: int = 2_000,
        max_queue_wait: float = 5.0,
    ) -> None:
        self._transport = transport
        self._on_outcome = on_outcome
        self._lanes_per_host = lanes_per_host
        self._max_in_flight = max_in_flight
        # Lanes waiting for one of the max_in_flight slots, first come first served.
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._hosts: dict[str, _Host] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._max_queued_per_host = max_queued_per_host
        self._max_queue_wait = max_queue_wait
        self.queued = 0
        self.in_flight = 0

    def submit(self, job: Job, may_shed: bool = False) -> bool:
        """Queue ``job`` in its lane; False when ``may_shed`` and its host is saturated
        (see the module docstring). The caller, which knows when the shared buffer is
        under pressure, sends such a job to a retry tier instead of letting it fill the
        buffer."""
        key = job.request.host_key
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self._clock())
        index = hash(job.order_key) % self._lanes_per_host
        lane = host.lanes.get(index)
        if lane is not None:
            if may_shed and host.queued >= self._max_queued_per_host and self._saturated(host):
                return False
            lane.append(job)
            self.queued += 1
            host.queued += 1
            return True
        self.queued += 1
        host.queued += 1
        lane = host.lanes[index] = deque((job,))
        task = asyncio.get_running_loop().create_task(self._drain(key, host, index, lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _saturated(self, host: _Host) -> bool:
        return self._clock() - host.delivered_at > self._max_queue_wait

    def shed_stale(self) -> list[Job]:
        """Take queued jobs away from saturated hosts (see the module docstring).

        A saturated host holding more than ``max_queued_per_host`` queued jobs keeps its
        first jobs per lane (up to the limit overall); the later ones are removed and
        returned, in lane order, for the caller to move to a retry tier. Run
        periodically: a hanging destination would otherwise hold its backlog in the
        shared buffer until it drained.
        """
        shed: list[Job] = []
        for host in self._hosts.values():
            if host.queued <= self._max_queued_per_host or not self._saturated(host):
                continue
            keep = max(1, self._max_queued_per_host // len(host.lanes))
            for lane in host.lanes.values():
                while len(lane) > keep:
                    shed.append(lane.pop())
                    host.queued -= 1
                    self.queued -= 1
        return shed

    def host_backlog(self, host_key: str) -> int:
        host = self._hosts.get(host_key)
        return 0 if host is None else host.queued

    async def _drain(self, key: str, host: _Host, index: int, lane: deque[Job]) -> None:
        send = self._transport.send
        clock = self._clock
        limit = self._max_in_flight
        waiters = self._slot_waiters
        try:
            while lane:
                # The lane stays registered in host.lanes while this worker runs, so new
                # jobs of the same key queue behind the current one.
                job = lane.popleft()
                self.queued -= 1
                host.queued -= 1
                if self.in_flight < limit and not waiters:
                    self.in_flight += 1  # a free slot: no future, no context manager
                else:
                    await self._wait_for_slot()
                start = clock()
                try:
                    outcome = await send(job.request)
                except Exception as exc:
                    # Transports never raise for I/O; anything else is a bug, and the event
                    # must still reach the retry tier rather than vanish with this lane.
                    log.exception(
                        "transport failed unexpectedly", extra={"event_id": job.request.event_id}
                    )
                    outcome = connection_error_outcome(exc)
                finally:
                    self._release_slot()
                end = clock()
                if outcome.kind is OutcomeKind.DELIVERED:
                    host.delivered_at = end
                try:
                    self._on_outcome(job, outcome, end - start)
                except Exception:
                    log.exception(
                        "outcome handler failed", extra={"event_id": job.request.event_id}
                    )
        finally:
            del host.lanes[index]
            if not host.lanes:
                self._hosts.pop(key, None)

    async def _wait_for_slot(self) -> None:
        """Wait for a slot; ``in_flight`` already counts it when this returns."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release_slot()  # handed a slot while being cancelled: pass it on
            else:
                self._slot_waiters.remove(future)
            raise

    def _release_slot(self) -> None:
        """Hand the slot to the first waiting lane, or free it."""
        waiters = self._slot_waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot moves over: in_flight stays
                return
        self.in_flight -= 1

    def discard(self, drop: Callable[[Job], bool]) -> list[Job]:
        """Remove the queued (not yet started) jobs for which ``drop`` is true.

        Used when partitions are revoked: their queued events are left to the new
        owner, which starts from the committed offset (the lowest unfinished one).
        """
        removed: list[Job] = []
        for host in self._hosts.values():
            for lane in host.lanes.values():
                if not any(drop(job) for job in lane):
                    continue
                kept = [job for job in lane if not drop(job)]
                removed_here = len(lane) - len(kept)
                removed.extend(job for job in lane if drop(job))
                lane.clear()
                lane.extend(kept)
                host.queued -= removed_here
                self.queued -= removed_here
        return removed

    async def drain(self, deadline: float) -> bool:
        """Wait until every lane is empty, at most ``deadline`` seconds; True if empty."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=deadline)
        return not pending

    async def cancel(self) -> None:
        """Stop every lane (after a drain deadline); queued jobs stay unfinished."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
