"""The event loop side of the pipeline, composed of one part per job.

A batch from the consumer thread goes through :mod:`~stream_wfm.pipeline.intake`
(decode → join config → filter), :mod:`~stream_wfm.pipeline.submit` (format →
queue in a lane), :mod:`~stream_wfm.pipeline.lanes` (deliver),
:mod:`~stream_wfm.pipeline.attempts` (count, decide) and
:mod:`~stream_wfm.pipeline.settle` (finish, retry, defer, dead-letter);
retry-topic records wait in :mod:`~stream_wfm.pipeline.retry_gate`.
:mod:`~stream_wfm.pipeline.backpressure` counts what is unfinished,
:mod:`~stream_wfm.pipeline.fair_share` moves slow endpoints' excess aside,
:mod:`stream_wfm.health.endpoints` keeps each endpoint's circuit breaker, and
:mod:`~stream_wfm.pipeline.handback` gives revoked partitions back. This module
wires them together, owns the assignment (one offset tracker per partition)
and commits every ``commit_interval`` seconds up to each partition's lowest
unfinished offset.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable

from confluent_kafka import Message

from stream_wfm.delivery.outcome import Outcome
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind
from stream_wfm.health.breaker import BreakerPolicy
from stream_wfm.health.endpoints import Endpoint, Endpoints
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.attempts import Attempts
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.commands import TP, Command, Commit
from stream_wfm.pipeline.consumer import ConsumerThread
from stream_wfm.pipeline.fair_share import INTERVAL, FairShare, endpoint_of
from stream_wfm.pipeline.handback import Handback
from stream_wfm.pipeline.intake import Intake
from stream_wfm.pipeline.lanes import Dispatcher, Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.order import KeyOrder
from stream_wfm.pipeline.order_scan import WaitingEvent
from stream_wfm.pipeline.retry_gate import RetryGate
from stream_wfm.pipeline.settle import Settler
from stream_wfm.pipeline.submit import Submitter
from stream_wfm.retry.writer import RetryWriter

log = logging.getLogger(__name__)

__all__ = ["Pipeline"]


class Pipeline:
    """The consumer thread's sink (:class:`~stream_wfm.pipeline.consumer.BatchSink`)."""

    def __init__(
        self,
        *,
        store: ConfigStore[TemplatedEntry],
        dispatcher_factory: Callable[[Callable[[Job, Outcome, float], None]], Dispatcher],
        writer: RetryWriter,
        metrics: Metrics,
        topic_kinds: dict[str, EventKind],
        retry_topics: set[str],
        max_buffered: int,
        order_keys_in_memory: int = 100_000,
        breaker: BreakerPolicy = BreakerPolicy(),  # noqa: B008  # frozen
        commit_interval: float = 1.0,
        revoke_drain: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._topic_kinds = topic_kinds
        self._all_topics = [*topic_kinds, *retry_topics]
        self._commit_interval = commit_interval
        self._consumer: ConsumerThread | None = None
        self._trackers: dict[TP, PartitionTracker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.backpressure = Backpressure(max_buffered, self._backpressure_changed)
        self._handback = Handback(self.backpressure, revoke_drain)
        self.order = KeyOrder(order_keys_in_memory)
        settler = Settler(writer, self.backpressure, self._handback, self.order)
        self.endpoints = Endpoints(breaker, metrics, clock, on_open=self._circuit_opened)
        attempts = self._attempts = Attempts(
            store=store,
            settler=settler,
            endpoints=self.endpoints,
            order=self.order,
            metrics=metrics,
            clock=clock,
        )
        self.dispatcher = attempts.dispatcher = dispatcher_factory(attempts.on_outcome)
        self._fair_share = FairShare(
            self.dispatcher, self.backpressure, self.endpoints, max_buffered, self.dispatcher.clock
        )
        self._submitter = Submitter(
            store=store,
            dispatcher=self.dispatcher,
            endpoints=self.endpoints,
            fair_share=self._fair_share,
            order=self.order,
            attempts=attempts,
            settler=settler,
            metrics=metrics,
            clock=clock,
        )
        self._gate = RetryGate(
            submitter=self._submitter,
            settler=settler,
            backpressure=self.backpressure,
            handback=self._handback,
            metrics=metrics,
            post=self._post,
            clock=clock,
        )
        self._intake = Intake(
            store=store,
            trackers=self._trackers,
            gate=self._gate,
            submitter=self._submitter,
            settler=settler,
            backpressure=self.backpressure,
            metrics=metrics,
            topic_kinds=topic_kinds,
            retry_topics=retry_topics,
        )
        metrics.pending_events.set_function(lambda: self.backpressure.pending)
        metrics.in_flight.set_function(lambda: self.dispatcher.in_flight)
        order = self.order
        metrics.order_waiting_events.labels("memory").set_function(
            lambda: order.waiting_events - order.spilled_events
        )
        metrics.order_waiting_events.labels("disk").set_function(lambda: order.spilled_events)

    @property
    def pending(self) -> int:
        """Consumed events not finished yet."""
        return self.backpressure.pending

    def attach(self, consumer: ConsumerThread) -> None:
        """Start working with ``consumer``: commands, input hold, periodic commit/shed."""
        self._consumer = consumer
        self.backpressure.attach(consumer)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self._commit_interval, self._commit)),
            loop.create_task(self._every(INTERVAL, self._move_aside)),
        ]

    # --- the consumer thread's callbacks (run on the loop) -----------------------------
    def on_batch(self, messages: list[Message]) -> None:
        self._intake.on_batch(messages)

    def on_assigned(self, partitions: list[TP]) -> None:
        for tp in partitions:
            self._trackers[tp] = PartitionTracker(*tp)
        self._update_assignment_metrics()
        self._metrics.rebalances.labels("assign").inc()

    def on_waiting(self, waiting: list[WaitingEvent]) -> None:
        """Events found waiting in the retry tiers of newly assigned partitions (before
        any of their records is fetched): their keys' later events wait behind them."""
        order = self.order
        for event in waiting:
            order.wait(event.tp, event.key, event.offset, event.tier, event.due_ms)

    def on_revoked(self, partitions: list[TP]) -> concurrent.futures.Future[dict[TP, int]]:
        self.order.forget([tp for tp in partitions if tp[0] in self._topic_kinds])
        trackers = []
        for tp in partitions:
            self._gate.forget(tp)
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True
                trackers.append(tracker)
        self._update_assignment_metrics()
        self._metrics.rebalances.labels("revoke").inc()
        return self._handback.start(trackers, self.dispatcher)

    # --- commits ---------------------------------------------------------------------
    def committable_offsets(self) -> dict[TP, int]:
        """The offsets that moved since the last call."""
        offsets = {}
        for tp, tracker in self._trackers.items():
            offset = tracker.take_commit()
            if offset is not None:
                offsets[tp] = offset
        return offsets

    def final_offsets(self) -> dict[TP, int]:
        """Everything committable now (for shutdown), whether or not it moved."""
        return {tp: o for tp, t in self._trackers.items() if (o := t.committable()) is not None}

    def _commit(self) -> None:
        offsets = self.committable_offsets()
        if offsets:
            self._post(Commit(offsets))

    # --- endpoint health -----------------------------------------------------------
    def _circuit_opened(self, endpoint: Endpoint) -> None:
        """No request goes to an open endpoint: its queued events wait in a retry tier."""
        key = (endpoint.account_id, endpoint.kind)
        jobs = self.dispatcher.discard(lambda job: endpoint_of(job) == key)
        for job in jobs:
            self._attempts.defer(job.context, job.attempt, "circuit_open")

    def _move_aside(self) -> None:
        jobs = self._fair_share.check()
        if not jobs:
            return
        log.warning(
            "endpoints over their fair share of the buffer: moving their excess to the retry tier",
            extra={
                "events": len(jobs),
                "accounts": sorted({job.context.account_id for job in jobs})[:10],
            },
        )
        for job in jobs:
            self._attempts.defer(job.context, job.attempt, "fair_share")

    async def stop(self) -> None:
        """Stop committing and timers; later revokes answer at once with what is finished.
        Safe to call twice."""
        self._handback.close()
        self._gate.close()
        self.order.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- plumbing --------------------------------------------------------------------
    def _post(self, command: Command) -> None:
        if self._consumer is not None:
            self._consumer.post(command)

    @staticmethod
    async def _every(interval: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            action()

    def _backpressure_changed(self, held: bool) -> None:
        inputs = sum(1 for tp in self._trackers if tp[0] in self._topic_kinds) if held else 0
        self._metrics.paused_partitions.labels("backpressure").set(inputs)

    def _update_assignment_metrics(self) -> None:
        per_topic: dict[str, int] = {}
        for topic, _p in self._trackers:
            per_topic[topic] = per_topic.get(topic, 0) + 1
        for topic in self._all_topics:
            self._metrics.assigned_partitions.labels(topic).set(per_topic.get(topic, 0))
