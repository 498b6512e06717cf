"""The event loop side of the pipeline: decode → join config → filter → format → lanes.

Batches from the consumer thread are processed inline (no task per event).
Filtered events finish at once; selected events become jobs in the ordered
lanes (:mod:`stream_wfm.pipeline.lanes`); outcomes finish the work, or hand it
to the retry/dead-letter router and finish it once the broker acknowledged
the retry or DLQ record. Offsets are committed up to the lowest unfinished
offset of each partition, every ``commit_interval`` seconds and on revoke.

Retry-topic records arrive through the same consumer: a record not yet due
pauses its partition and seeks back to it; a timer resumes it at the due time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition

from stream_wfm.delivery.outcome import Outcome, OutcomeKind, backlog_outcome
from stream_wfm.delivery.request import UnformattableEventError
from stream_wfm.events import (
    EventKind,
    InvalidEventError,
    complete_event,
    decode_event,
    parse_event,
)
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.consumer import TP, Command, ConsumerThread
from stream_wfm.pipeline.lanes import Dispatcher, Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import (
    InvalidRetryRecordError,
    RetryRecord,
    SourceRecord,
    decode_retry_record,
)
from stream_wfm.retry.router import FailureRouter
from stream_wfm.routing import decide, decide_fields

log = logging.getLogger(__name__)

# A retry record due within this many seconds is held in memory instead of pausing.
HOLD_WINDOW = 0.5
# A paused retry partition is resumed this long before its head record is due.
RESUME_EARLY = 0.3


class Pipeline:
    """Receives batches, tracks offsets, routes outcomes. Runs on the event loop."""

    def __init__(
        self,
        *,
        store: ConfigStore,
        dispatcher_factory: Callable[[Callable[[Job, Outcome, float], None]], Dispatcher],
        router: FailureRouter,
        metrics: Metrics,
        topic_kinds: dict[str, EventKind],
        retry_topics: set[str],
        max_buffered: int,
        commit_interval: float = 1.0,
        revoke_drain: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher_factory(self._on_outcome)
        self._router = router
        self._metrics = metrics
        self._topic_kinds = topic_kinds
        self._retry_topics = retry_topics
        self._high_water = max_buffered
        self._shed_water = max_buffered // 2
        self._low_water = max_buffered // 2
        self._commit_interval = commit_interval
        self._revoke_drain = revoke_drain
        self._clock = clock
        self._consumer: ConsumerThread | None = None
        self._trackers: dict[TP, PartitionTracker] = {}
        self._waiting: dict[TP, asyncio.TimerHandle | None] = {}  # retry partitions paused
        self._revoke_waiters: list[
            tuple[list[PartitionTracker], concurrent.futures.Future[dict[TP, int]]]
        ] = []
        self._backpressure = False
        self._closing = False
        self._commit_task: asyncio.Task[None] | None = None
        self._shed_task: asyncio.Task[None] | None = None
        self.pending = 0
        # Pre-bound metric children (no label lookup per event).
        topics = [*topic_kinds, *retry_topics]
        self._consumed = {t: metrics.events_consumed.labels(t) for t in topics}
        self._invalid = {t: metrics.events_invalid.labels(t) for t in topics}
        self._delivered_latency = {
            k.value: metrics.end_to_end_latency.labels(k.value) for k in EventKind
        }
        self._duration = {k.value: metrics.delivery_duration.labels(k.value) for k in EventKind}
        self._attempts: dict[tuple[EventKind, OutcomeKind, str], Any] = {}
        self._filtered: dict[str, Any] = {}
        self._filtered_counts: dict[str, int] = {}  # this batch's, flushed by on_batch
        self._dropped: dict[str, Any] = {}
        metrics.pending_events.set_function(lambda: self.pending)
        metrics.in_flight.set_function(lambda: self._dispatcher.in_flight)

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    def attach(self, consumer: ConsumerThread) -> None:
        self._consumer = consumer
        loop = asyncio.get_running_loop()
        self._commit_task = loop.create_task(self._commit_periodically())
        self._shed_task = loop.create_task(self._shed_periodically())

    # --- consumer thread → loop ---------------------------------------------------------
    def on_assigned(self, partitions: list[TP]) -> None:
        for tp in partitions:
            self._trackers[tp] = PartitionTracker(*tp)
        self._update_assignment_metrics()
        self._metrics.rebalances.labels("assign").inc()

    def on_revoked(self, partitions: list[TP]) -> concurrent.futures.Future[dict[TP, int]]:
        future: concurrent.futures.Future[dict[TP, int]] = concurrent.futures.Future()
        trackers = []
        for tp in partitions:
            handle = self._waiting.pop(tp, None)
            if handle is not None:
                handle.cancel()
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True
                trackers.append(tracker)
        self._update_assignment_metrics()
        self._metrics.rebalances.labels("revoke").inc()
        self._revoke_waiters.append((trackers, future))
        self._check_revoke_waiters()
        if not future.done():
            # Give the revoked partitions' consumed events time to finish, so the hand-back
            # commits them all and the next owner delivers nothing twice. Past that, queued
            # events are handed back undelivered (the next owner resumes at the lowest
            # unfinished offset) and only requests already under way are waited for.
            asyncio.get_running_loop().call_later(
                self._revoke_drain, self._hand_back_queued, trackers
            )
        return future

    def _hand_back_queued(self, trackers: list[PartitionTracker]) -> None:
        revoked = set(map(id, trackers))
        dropped = self._dispatcher.discard(lambda job: id(job.context.tracker) in revoked)
        if dropped:
            log.warning(
                "revoked partitions did not drain in time; handing queued events back",
                extra={"events": len(dropped)},
            )
        for job in dropped:
            self.pending -= 1
            job.context.tracker.abandon(job.context.offset)
        self._check_revoke_waiters()

    def on_batch(self, messages: list[Message]) -> None:
        trackers = self._trackers
        kinds = self._topic_kinds
        counts: dict[str, int] = {}
        for msg in messages:
            if msg.error() is not None:
                log.warning("consume error", extra={"error": str(msg.error())})
                continue
            # A message without error always has topic, partition and offset.
            topic: str = msg.topic()  # type: ignore[assignment]
            tp = (topic, msg.partition())
            tracker = trackers.get(tp)  # type: ignore[arg-type]
            if tracker is None or tp in self._waiting:
                continue  # revoked, or a retry partition waiting to be due
            offset: int = msg.offset()  # type: ignore[assignment]
            if tracker.next_offset is not None and offset < tracker.next_offset:
                continue  # fetched again after a seek: already in progress
            counts[topic] = counts.get(topic, 0) + 1
            kind = kinds.get(topic)
            if kind is not None:
                self._process_input(msg, tracker, offset, kind)
            else:
                self._process_retry(msg, tracker, offset)
        for topic, n in counts.items():
            self._consumed[topic].inc(n)
        filtered = self._filtered_counts
        if filtered:
            for reason, n in filtered.items():
                self._count(self._filtered, self._metrics.events_filtered, reason, n)
            filtered.clear()
        if not self._backpressure and self.pending > self._high_water:
            self._set_backpressure(True)

    # --- processing -----------------------------------------------------------------------
    def _process_input(
        self, msg: Message, tracker: PartitionTracker, offset: int, kind: EventKind
    ) -> None:
        try:
            data = parse_event(msg.value(), kind)
        except InvalidEventError as exc:
            tracker.add(offset)
            self.pending += 1
            self._invalid[tracker.topic].inc()
            work = Work(tracker, offset, self._source(msg, tracker, offset), kind, None, 0)
            self._dead_letter(work, "invalid_event", exc.detail, 0, None, None)
            return
        entry = self._store.get(data["account_id"])
        reason = decide_fields(kind, data, entry)
        if reason is not None:
            # Filtered out: finished at once and counted per batch (see on_batch); no event,
            # work object, source copy or pending count is made for it.
            self._filtered_counts[reason] = self._filtered_counts.get(reason, 0) + 1
            tracker.skip(offset)
            return
        assert entry is not None
        tracker.add(offset)
        self.pending += 1
        event = complete_event(data, kind, (tracker.topic, tracker.partition, offset))
        work = Work(tracker, offset, self._source(msg, tracker, offset), kind, event, 0)
        self._submit(work, entry, attempt=1)

    @staticmethod
    def _source(msg: Message, tracker: PartitionTracker, offset: int) -> SourceRecord:
        ts_type, ts = msg.timestamp()
        return SourceRecord(
            tracker.topic,
            tracker.partition,
            offset,
            msg.key(),
            msg.value(),
            None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
        )

    def _process_retry(self, msg: Message, tracker: PartitionTracker, offset: int) -> None:
        """Handle a retry-topic record: due (or nearly) now, or its partition waits."""
        try:
            record = decode_retry_record(msg.value() or b"")
        except InvalidRetryRecordError as exc:
            tracker.add(offset)
            self.pending += 1
            self._invalid[tracker.topic].inc()
            source = SourceRecord(
                tracker.topic, tracker.partition, offset, msg.key(), msg.value(), None
            )
            self._dead_letter(
                Work(tracker, offset, source, EventKind.AGENT, None, 0),
                "invalid_retry_record",
                str(exc),
                0,
                None,
                None,
            )
            return
        wait = record.due_at_ms / 1000 - self._clock()
        if wait > HOLD_WINDOW:
            self._wait_until_due(tracker, offset, record.due_at_ms)
            return
        tracker.add(offset)
        self.pending += 1
        if wait > 0:
            # Due very soon: hold it here rather than pausing the partition again (a
            # pause/resume round trip through the fetcher costs ~100-200 ms of lateness).
            asyncio.get_running_loop().call_later(wait, self._retry_due, record, tracker, offset)
        else:
            self._retry_due(record, tracker, offset)

    def _retry_due(self, record: RetryRecord, tracker: PartitionTracker, offset: int) -> None:
        if tracker.revoked or self._closing:
            # Held past a revoke or shutdown: leave it to the next owner (uncommitted).
            tracker.abandon(offset)
            self.pending -= 1
            self._check_revoke_waiters()
            return
        self._metrics.retry_lateness.observe(max(0.0, self._clock() - record.due_at_ms / 1000))
        source = record.source
        kind = record.kind
        try:
            event = decode_event(
                source.value, kind, (source.topic, source.partition, source.offset)
            )
        except InvalidEventError as exc:  # cannot happen for records we wrote; be safe
            self._dead_letter(
                Work(tracker, offset, source, kind, None, record.first_attempt_at_ms),
                "invalid_event",
                exc.detail,
                record.attempt - 1,
                record.last_error,
                record.last_status,
            )
            return
        work = Work(tracker, offset, source, kind, event, record.first_attempt_at_ms)
        self._route_retry(work, attempt=record.attempt)

    def _route_retry(self, work: Work, attempt: int) -> None:
        """Join a due retry with the account's *current* config: send it, or drop it when
        the integration is gone, disabled or no longer selects the event."""
        event = work.event
        assert event is not None
        entry = self._store.get(event.account_id)
        reason = decide(event, entry)
        if reason is not None:
            self._count(self._dropped, self._metrics.retries_dropped, reason)
            log.info(
                "pending retry dropped by current config",
                extra={
                    "account_id": event.account_id,
                    "event_id": event.event_id,
                    "reason": reason,
                },
            )
            self._finish(work)
            return
        assert entry is not None
        self._submit(work, entry, attempt)

    def _submit(self, work: Work, entry: Entry, attempt: int) -> None:
        """Format the selected ``work`` with its account's template and queue it."""
        event = work.event
        assert event is not None
        template = entry.template(event.kind)
        assert template is not None  # decide() filtered events without a URL
        try:
            request = template.build(event)
        except UnformattableEventError as exc:
            self._dead_letter(work, exc.reason, exc.detail, attempt - 1, None, None)
            return
        if work.first_attempt_ms == 0:
            work.first_attempt_ms = int(self._clock() * 1000)
        job = Job(request, event.order_key, attempt, work)
        if not self._dispatcher.submit(job, may_shed=self._under_pressure()):
            self._defer(job)

    def _under_pressure(self) -> bool:
        """The shared buffer is half full: a saturated destination's overflow is shed (the
        bulkhead), so it cannot push the buffer to its high-water mark and pause every
        other destination's input. Below that, a slow destination only queues."""
        return self.pending >= self._shed_water

    def _defer(self, job: Job) -> None:
        """Move a job its saturated destination could not take to a retry tier. Not an
        attempt: the event keeps its attempt number, so deferring never dead-letters it."""
        work: Work = job.context
        outcome = backlog_outcome(self._dispatcher.host_backlog(job.request.host_key))
        self._count_attempt(work.kind, outcome)
        self._settle(work, lambda: self._router.retry(work, outcome, job.attempt - 1))

    def _on_outcome(self, job: Job, outcome: Outcome, elapsed: float) -> None:
        work: Work = job.context
        event = work.event
        assert event is not None
        kind = event.kind  # a StrEnum: looks up the dicts keyed by its value, without .value
        self._duration[kind].observe(elapsed)
        self._count_attempt(kind, outcome)
        if outcome.kind is OutcomeKind.DELIVERED:
            ts = work.source.timestamp_ms
            if ts is not None:
                self._delivered_latency[kind].observe(max(0.0, self._clock() - ts / 1000))
            self._finish(work)
            return
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
        self._settle(
            work, lambda: self._router.after_failure(work, outcome, job.attempt, max_retries)
        )

    def _count_attempt(self, kind: EventKind, outcome: Outcome) -> None:
        """``stream_wfm_deliveries_total`` + 1, through a cache of bound children (Enum's
        ``.value`` is a descriptor call: the StrEnum members themselves are the keys)."""
        key = (kind, outcome.kind, outcome.status_class)
        child = self._attempts.get(key)
        if child is None:
            labels = (kind.value, outcome.kind.value, outcome.status_class)
            child = self._attempts[key] = self._metrics.deliveries.labels(*labels)
        child.inc()

    # --- finishing --------------------------------------------------------------------------
    def _dead_letter(
        self,
        work: Work,
        reason: str,
        detail: str | None,
        attempts: int,
        last_error: str | None,
        last_status: int | None,
    ) -> None:
        self._settle(
            work,
            lambda: self._router.dead_letter(
                work, reason, detail, attempts, last_error, last_status
            ),
        )

    def _settle(self, work: Work, produce: Callable[[], asyncio.Future[Any]]) -> None:
        """Finish ``work`` once the produced retry/DLQ record is acknowledged."""

        def on_ack(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                log.error(
                    "could not write retry/DLQ record; trying again in 1 s (the offset stays "
                    "uncommitted meanwhile)",
                    extra={
                        "error": None if future.cancelled() else str(future.exception()),
                        "offset": work.offset,
                        "topic": work.tracker.topic,
                    },
                )
                asyncio.get_running_loop().call_later(1.0, self._settle, work, produce)
                return
            self._finish(work)

        produce().add_done_callback(on_ack)

    def _finish(self, work: Work) -> None:
        self._finish_offset(work.tracker, work.offset)

    def _finish_offset(self, tracker: PartitionTracker, offset: int) -> None:
        tracker.done(offset)
        self.pending -= 1
        if self._backpressure and self.pending < self._low_water:
            self._set_backpressure(False)
        if tracker.revoked and self._revoke_waiters:
            self._check_revoke_waiters()

    def _check_revoke_waiters(self) -> None:
        still = []
        for trackers, future in self._revoke_waiters:
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
        self._revoke_waiters = still

    # --- retry partitions waiting for their due time ---------------------------------------
    def _wait_until_due(self, tracker: PartitionTracker, offset: int, due_at_ms: int) -> None:
        consumer = self._consumer
        assert consumer is not None
        tp = (tracker.topic, tracker.partition)
        consumer.pause([tp])
        consumer.seek(tracker.topic, tracker.partition, offset)
        # Resume a little early; records arriving within HOLD_WINDOW of their due time are
        # held in memory until due, so the fetch round trip does not make retries late.
        delay = max(0.0, due_at_ms / 1000 - self._clock() - RESUME_EARLY)
        self._waiting[tp] = asyncio.get_running_loop().call_later(delay, self._resume_due, tp)
        self._metrics.paused_partitions.labels("retry_not_due").inc()

    def _resume_due(self, tp: TP) -> None:
        consumer = self._consumer
        if consumer is None or tp not in self._waiting:
            return
        self._waiting[tp] = None
        loop = asyncio.get_running_loop()

        def resume(kafka_consumer: Any) -> None:
            kafka_consumer.resume([TopicPartition(*tp)])
            # Stop ignoring the partition only after the resume, so that batches fetched
            # before the seek (already queued to the loop) are still dropped.
            loop.call_soon_threadsafe(self._stop_waiting, tp)

        consumer.post(Command("call", fn=resume))

    def _stop_waiting(self, tp: TP) -> None:
        if tp in self._waiting and self._waiting[tp] is None:
            del self._waiting[tp]
            self._metrics.paused_partitions.labels("retry_not_due").dec()

    # --- backpressure, commits, metrics -------------------------------------------------------
    def _set_backpressure(self, on: bool) -> None:
        """Hold the input (the consumer thread stops fetching; see ``pipeline.consumer``)."""
        self._backpressure = on
        consumer = self._consumer
        if consumer is None:
            return
        inputs = sum(1 for tp in self._trackers if tp[0] in self._topic_kinds)
        if on:
            log.warning("backpressure: input held", extra={"pending": self.pending})
            consumer.hold_input(True)
            self._metrics.paused_partitions.labels("backpressure").set(inputs)
        else:
            log.info("backpressure released: input flows again", extra={"pending": self.pending})
            consumer.hold_input(False)
            self._metrics.paused_partitions.labels("backpressure").set(0)

    def committable_offsets(self) -> dict[TP, int]:
        offsets = {}
        for tp, tracker in self._trackers.items():
            offset = tracker.take_commit()
            if offset is not None:
                offsets[tp] = offset
        return offsets

    def final_offsets(self) -> dict[TP, int]:
        """Everything committable now (for shutdown), whether or not it moved."""
        return {tp: o for tp, t in self._trackers.items() if (o := t.committable()) is not None}

    async def _shed_periodically(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self._under_pressure():
                continue
            shed = self._dispatcher.shed_stale()
            if shed:
                log.warning(
                    "destination not keeping up: moving queued events to the retry tier",
                    extra={"host": shed[0].request.host_key, "events": len(shed)},
                )
            for job in reversed(shed):  # oldest first
                self._defer(job)

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval)
            offsets = self.committable_offsets()
            if offsets and self._consumer is not None:
                self._consumer.commit(offsets)

    async def stop(self) -> None:
        """Stop committing and timers; later revokes answer at once with what is finished."""
        self._closing = True
        self._check_revoke_waiters()
        tasks = [t for t in (self._commit_task, self._shed_task) if t is not None]
        self._commit_task = self._shed_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handle in self._waiting.values():
            if handle is not None:
                handle.cancel()

    def _update_assignment_metrics(self) -> None:
        per_topic: dict[str, int] = {}
        for topic, _p in self._trackers:
            per_topic[topic] = per_topic.get(topic, 0) + 1
        for topic in [*self._topic_kinds, *self._retry_topics]:
            self._metrics.assigned_partitions.labels(topic).set(per_topic.get(topic, 0))

    @staticmethod
    def _count(cache: dict[str, Any], counter: Any, reason: str, n: int = 1) -> None:
        child = cache.get(reason)
        if child is None:
            child = cache[reason] = counter.labels(reason)
        child.inc(n)
