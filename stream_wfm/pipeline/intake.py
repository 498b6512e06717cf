"""Batch intake: source topics → decode → join config → filter, inline, per batch.

Each batch the consumer thread hands over is processed here on the event loop,
with no task per record. Records of partitions no longer owned, of retry
partitions waiting for their due time, or fetched again after a seek are
skipped. An input record is decoded (:func:`stream_wfm.events.parse_event`, which
also reads a value framed by a Schema Registry serializer),
joined with its account's integration and filtered
(:func:`stream_wfm.routing.decide_fields`): a filtered event finishes at once
and costs no object beyond its parsed fields; a selected one becomes
:class:`~stream_wfm.pipeline.work.Work` for the submitter; a record that is not
a valid event is dead-lettered. Retry-topic records go to the retry gate.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Message

from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import (
    KEY_ACCOUNT_ID,
    EventKind,
    InvalidEventError,
    complete_event,
    parse_event,
)
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.commands import TP
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.retry_gate import RetryGate
from stream_wfm.pipeline.settle import Settler
from stream_wfm.pipeline.submit import Submitter
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.writer import DeadLetter
from stream_wfm.routing import ENDPOINT_DISABLED, decide_fields

log = logging.getLogger(__name__)

__all__ = ["Intake"]


class Intake:
    """Takes the consumer thread's batches. Runs on the event loop."""

    def __init__(
        self,
        *,
        store: ConfigStore[TemplatedEntry],
        trackers: dict[TP, PartitionTracker],
        gate: RetryGate,
        submitter: Submitter,
        settler: Settler,
        backpressure: Backpressure,
        metrics: Metrics,
        topic_kinds: dict[str, EventKind],
        retry_topics: set[str],
    ) -> None:
        self._store = store
        self._trackers = trackers  # the assignment, shared with the pipeline
        self._gate = gate
        self._submitter = submitter
        self._settler = settler
        self._backpressure = backpressure
        self._metrics = metrics
        self._topic_kinds = topic_kinds
        topics = [*topic_kinds, *retry_topics]
        self._consumed = {t: metrics.events_consumed.labels(t) for t in topics}
        self._invalid = {t: metrics.events_invalid.labels(t) for t in topics}
        self._filtered: dict[str, Any] = {}
        self._filtered_counts: dict[str, int] = {}  # this batch's, flushed by on_batch

    def on_batch(self, messages: list[Message]) -> None:
        # A batch from consume() comes in runs of one partition: the partition's tracker,
        # kind and counts are looked up once per run, and a run's filtered offsets are
        # recorded once (PartitionTracker.skip_through): 26.1k -> 23.2k instructions per
        # filtered event (callgrind, docs/performance.md).
        trackers = self._trackers
        kinds = self._topic_kinds
        waiting = self._gate.waiting
        get_entry = self._store.get
        submit = self._submitter.submit
        backpressure = self._backpressure
        counts: dict[str, int] = {}
        filtered = self._filtered_counts
        reason_run: str | None = None  # the filter reason of the last filtered records
        reason_n = 0  # how many in a row, not yet in ``filtered``
        run_topic = ""
        run_partition = -1
        tracker: PartitionTracker | None = None
        kind: EventKind | None = None
        seen = floor = -1  # the run's next_offset (-1: None) when it began, and now
        consumed = 0  # the run's records counted as consumed
        for msg in messages:
            if msg.error() is not None:
                log.warning("consume error", extra={"error": str(msg.error())})
                continue
            # A message without error always has topic, partition and offset.
            partition: int = msg.partition()  # type: ignore[assignment]
            topic: str = msg.topic()  # type: ignore[assignment]
            if partition != run_partition or topic != run_topic:
                if tracker is not None:
                    if floor != seen:
                        tracker.skip_through(floor - 1)
                    counts[run_topic] = counts.get(run_topic, 0) + consumed
                run_topic, run_partition, consumed = topic, partition, 0
                kind = kinds.get(topic)
                tracker = trackers.get((topic, partition))
                if tracker is not None:
                    next_offset = tracker.next_offset
                    seen = floor = -1 if next_offset is None else next_offset
            if tracker is None:
                continue  # revoked
            offset: int = msg.offset()  # type: ignore[assignment]
            if kind is None:
                # A retry-topic record. Only retry partitions wait, and the gate may start
                # waiting on this one at any record.
                if (topic, partition) in waiting:
                    continue  # a retry partition waiting to be due
                if tracker.next_offset is not None and offset < tracker.next_offset:
                    continue  # fetched again after a seek: already in progress
                consumed += 1
                self._gate.offer(msg, tracker, offset)
                continue
            if offset < floor:
                continue  # fetched again after a seek: already in progress
            consumed += 1
            # An input record, inline (once per event): decode, join, filter, submit.
            try:
                data = parse_event(msg.value(), kind)
            except InvalidEventError as exc:
                floor = offset + 1
                self._invalid_event(msg, tracker, offset, kind, exc)
                continue
            entry = get_entry(data[KEY_ACCOUNT_ID])
            reason = decide_fields(kind, data, entry)
            if reason is not None:
                if reason is reason_run:
                    # Filtered out: finished at once (the run's offsets recorded at its
                    # end) and counted per batch; no event, work object, source copy or
                    # pending count is made for it.
                    reason_n += 1
                    floor = offset + 1
                    continue
                floor = offset + 1
                if reason == ENDPOINT_DISABLED:
                    self._endpoint_disabled(msg, tracker, offset, kind, data)
                    continue
                if reason_run is not None:
                    filtered[reason_run] = filtered.get(reason_run, 0) + reason_n
                reason_run, reason_n = reason, 1
                continue
            assert entry is not None
            floor = offset + 1
            tracker.add(offset)
            backpressure.pending += 1
            event = complete_event(data, kind, (topic, partition, offset))
            submit(Work(tracker, offset, msg, kind, event, 0), entry, 1)
        if tracker is not None:
            if floor != seen:
                tracker.skip_through(floor - 1)
            counts[run_topic] = counts.get(run_topic, 0) + consumed
        if reason_run is not None:
            filtered[reason_run] = filtered.get(reason_run, 0) + reason_n
        for topic, n in counts.items():
            if n:
                self._consumed[topic].inc(n)
        self._flush_filtered()
        backpressure.check_high()

    def _invalid_event(
        self,
        msg: Message,
        tracker: PartitionTracker,
        offset: int,
        kind: EventKind,
        exc: InvalidEventError,
    ) -> None:
        """A record that is not a valid event: a dead letter ``invalid_event``."""
        tracker.add(offset)
        self._backpressure.pending += 1
        self._invalid[tracker.topic].inc()
        work = Work(tracker, offset, msg, kind, None, 0)
        self._settler.settle(work, DeadLetter("invalid_event", 0, exc.detail))

    def _endpoint_disabled(
        self,
        msg: Message,
        tracker: PartitionTracker,
        offset: int,
        kind: EventKind,
        data: dict[str, Any],
    ) -> None:
        """An event of an integration the service disabled for a failing endpoint: a dead
        letter ``endpoint_disabled``, for a re-enable to redrive (docs/contract.md §10)."""
        tracker.add(offset)
        self._backpressure.pending += 1
        event = complete_event(data, kind, (tracker.topic, tracker.partition, offset))
        work = Work(tracker, offset, msg, kind, event, 0)
        self._settler.settle(work, DeadLetter(ENDPOINT_DISABLED, 0))

    def _flush_filtered(self) -> None:
        filtered = self._filtered_counts
        if not filtered:
            return
        for reason, n in filtered.items():
            child = self._filtered.get(reason)
            if child is None:
                child = self._filtered[reason] = self._metrics.events_filtered.labels(reason)
            child.inc(n)
        filtered.clear()
