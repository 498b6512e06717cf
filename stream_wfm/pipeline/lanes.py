"""Ordered delivery lanes, grouped by destination host.

Selected events become :class:`Job` objects. Each destination host has up to
``lanes_per_host`` lanes; a job goes to lane ``hash(order_key) % lanes_per_host``
of its host, so one agent's events are delivered one after another, in input
order, while different agents proceed concurrently. A lane is a queue drained
by one worker coroutine that exists only while the lane has work: there is no
task per event. A slow or hanging host fills only its own lanes; other hosts'
lanes keep moving. An overall limit (``max_in_flight``) bounds requests in flight.

What does not belong in the lanes is taken out by the pipeline: the queued events
of an endpoint whose circuit breaker opened (:meth:`Dispatcher.discard`) and the
excess of endpoints over their fair share of the buffer (:meth:`Dispatcher.trim`,
see :mod:`stream_wfm.pipeline.fair_share`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from stream_wfm.delivery.outcome import Outcome, connection_error_outcome
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.transport import Transport

log = logging.getLogger(__name__)


class Job:
    """One delivery attempt waiting in (or running from) a lane.

    ``context`` is owned by whoever submitted the job. A submitter may instead queue
    its own per-event record as the job: a subclass that sets ``request``,
    ``order_key``, ``attempt`` and ``probe`` itself and is its own ``context``
    (:class:`~stream_wfm.pipeline.work.Work`), so that no second object is made per
    attempt.
    """

    __slots__ = ("_context", "attempt", "order_key", "probe", "queued_at", "request")

    def __init__(
        self,
        request: WebhookRequest,
        order_key: str,
        attempt: int,
        context: Any,
        probe: bool = False,
    ) -> None:
        self.request = request
        self.order_key = order_key
        self.attempt = attempt
        self._context = context
        self.probe = probe  # the half-open breaker's probe (stream_wfm.health.breaker)
        self.queued_at = 0.0  # the dispatcher's clock when it was queued

    @property
    def context(self) -> Any:
        """What the submitter attached to the job."""
        return self._context


OutcomeHandler = Callable[[Job, Outcome, float], None]


class _Host:
    __slots__ = ("lanes", "queued")

    def __init__(self) -> None:
        self.lanes: dict[int, deque[Job]] = {}
        self.queued = 0


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
        self.queued = 0
        self.in_flight = 0

    def submit(self, job: Job) -> None:
        """Queue ``job`` in its lane."""
        key = job.request.host_key
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        index = hash(job.order_key) % self._lanes_per_host
        job.queued_at = self._clock()
        self.queued += 1
        host.queued += 1
        lane = host.lanes.get(index)
        if lane is not None:
            lane.append(job)
            return
        lane = host.lanes[index] = deque((job,))
        task = asyncio.get_running_loop().create_task(self._drain(key, host, index, lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock of ``Job.queued_at``."""
        return self._clock

    def queued_jobs(self) -> Iterator[tuple[int, Job]]:
        """Every queued (not yet started) job with an id of its lane, in lane order."""
        for host in self._hosts.values():
            for lane in host.lanes.values():
                lane_id = id(lane)
                for job in lane:
                    yield lane_id, job

    def trim(self, limits: dict[Hashable, int], key_of: Callable[[Job], Hashable]) -> list[Job]:
        """In every lane, keep only the first ``limits[k]`` queued jobs whose
        ``key_of(job)`` is ``k`` (keys not in ``limits`` are kept whole); return the
        others, in lane order."""

        def drop(job: Job) -> bool:
            key = key_of(job)
            limit = limits.get(key)
            if limit is None:
                return False
            seen[key] = n = seen.get(key, 0) + 1
            return n > limit

        seen: dict[Hashable, int] = {}
        removed: list[Job] = []
        for host in self._hosts.values():
            for lane in host.lanes.values():
                seen.clear()
                removed.extend(self._remove(host, lane, drop))
        return removed

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
                    if waiters:
                        self._release_slot()
                    else:
                        self.in_flight -= 1  # _release_slot() with no lane waiting, inline
                end = clock()
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

    def take_followers(self, job: Job, same: Callable[[Job], bool]) -> list[Job]:
        """Remove and return, in order, the queued jobs of ``job``'s ordering key in its
        lane for which ``same(queued)`` is true: ``job`` was at the head of that lane, so
        they all came after it."""
        host = self._hosts.get(job.request.host_key)
        if host is None:
            return []
        lane = host.lanes.get(hash(job.order_key) % self._lanes_per_host)
        if not lane:
            return []
        key = job.order_key
        return self._remove(host, lane, lambda queued: queued.order_key == key and same(queued))

    def discard(self, drop: Callable[[Job], bool]) -> list[Job]:
        """Remove the queued (not yet started) jobs for which ``drop`` is true and return
        them, in lane order (``drop`` is called once per queued job).

        Used when partitions are revoked (their queued events are left to the new owner,
        which starts from the committed offset) and when an endpoint's breaker opens.
        """
        removed: list[Job] = []
        for host in self._hosts.values():
            for lane in host.lanes.values():
                removed.extend(self._remove(host, lane, drop))
        return removed

    def _remove(self, host: _Host, lane: deque[Job], drop: Callable[[Job], bool]) -> list[Job]:
        kept: list[Job] = []
        removed: list[Job] = []
        for job in lane:
            (removed if drop(job) else kept).append(job)
        if removed:
            lane.clear()
            lane.extend(kept)
            host.queued -= len(removed)
            self.queued -= len(removed)
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
