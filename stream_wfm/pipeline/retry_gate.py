"""Retry-topic records: let each one through at its due time, without blocking anything.

A record due now goes on at once; one due within :data:`HOLD_WINDOW` is held
in memory until due (per partition, in partition order, behind the records held before
it) (a pause/resume round trip through the fetcher costs
~100-200 ms of lateness). For a record due later, its partition is paused
and sought back to it, and a timer resumes the partition
:data:`RESUME_EARLY` before the record is due; the records fetched meanwhile
are ignored (:attr:`RetryGate.waiting`). Other partitions — the input topics
and the other tiers — keep flowing, and nothing busy-loops.

A due record is decoded again from the source record it carries — the input
record's value (framing included) and Kafka headers as they were — and joined with
the account's *current* config again
(:meth:`~stream_wfm.pipeline.submit.Submitter.resubmit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from confluent_kafka import Message

from stream_wfm.events import InvalidEventError, decode_event
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.commands import TP, Command, Pause, Resume, Seek
from stream_wfm.pipeline.handback import Handback
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.settle import Settler
from stream_wfm.pipeline.submit import Submitter
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import (
    InvalidRetryRecordError,
    RetryRecord,
    SourceRecord,
    decode_retry_record,
)
from stream_wfm.retry.writer import DeadLetter

log = logging.getLogger(__name__)

__all__ = ["HOLD_WINDOW", "RESUME_EARLY", "RetryGate"]

#: A retry record due within this many seconds is held in memory instead of pausing.
HOLD_WINDOW: Final = 0.5
#: A paused retry partition is resumed this long before its head record is due.
RESUME_EARLY: Final = 0.3


class RetryGate:
    """Holds retry-topic records until due. Runs on the event loop."""

    def __init__(
        self,
        *,
        submitter: Submitter,
        settler: Settler,
        backpressure: Backpressure,
        handback: Handback,
        metrics: Metrics,
        post: Callable[[Command], None],
        clock: Callable[[], float],
    ) -> None:
        self._submitter = submitter
        self._settler = settler
        self._backpressure = backpressure
        self._handback = handback
        self._metrics = metrics
        self._post = post
        self._clock = clock
        self._closing = False
        #: Retry partitions paused until their head record is due: records fetched for
        #: them are ignored. The timer handle is None once the resume was posted.
        self.waiting: dict[TP, asyncio.TimerHandle | None] = {}
        #: Records due within HOLD_WINDOW, per partition, in partition order.
        self._held: dict[TP, deque[tuple[RetryRecord, PartitionTracker, int]]] = {}
        self._paused = metrics.paused_partitions.labels("retry_not_due")

    def offer(self, msg: Message, tracker: PartitionTracker, offset: int) -> None:
        """A retry-topic record at ``offset`` of ``tracker``'s partition was fetched."""
        try:
            record = decode_retry_record(msg.value() or b"")
        except InvalidRetryRecordError as exc:
            tracker.add(offset)
            self._backpressure.pending += 1
            self._metrics.events_invalid.labels(tracker.topic).inc()
            source = SourceRecord(
                tracker.topic, tracker.partition, offset, msg.key(), msg.value(), None,
                headers=msg.headers(),  # type: ignore[arg-type]  # consumed: (str, bytes)
            )  # fmt: skip
            work = Work(tracker, offset, source, None, None, 0)
            self._settler.settle(work, DeadLetter("invalid_retry_record", 0, str(exc)))
            return
        wait = record.due_at_ms / 1000 - self._clock()
        if wait > HOLD_WINDOW:
            self._wait_until_due(tracker, offset, record.due_at_ms)
            return
        tracker.add(offset)
        self._backpressure.pending += 1
        tp = (tracker.topic, tracker.partition)
        held = self._held.get(tp)
        if held is None:
            if wait <= 0:
                self._due(record, tracker, offset)
                return
            held = self._held[tp] = deque()
        held.append((record, tracker, offset))
        if len(held) == 1:
            asyncio.get_running_loop().call_later(wait, self._release, tp)

    def forget(self, tp: TP) -> None:
        """``tp`` was revoked: stop its timer (its new owner pauses it again if needed)."""
        if tp not in self.waiting:
            return
        handle = self.waiting.pop(tp)
        if handle is not None:
            handle.cancel()
        self._paused.dec()

    def close(self) -> None:
        """Shutting down: cancel the timers; held records are left uncommitted."""
        self._closing = True
        for handle in self.waiting.values():
            if handle is not None:
                handle.cancel()

    def _release(self, tp: TP) -> None:
        """Let the partition's held records through, in partition order, while they are
        due; wait for the next one. (One timer per partition, not one per record: timers
        with nearly equal deadlines may fire in any order, and a key's records must go on
        in the order they were written, docs/contract.md §11.)"""
        held = self._held[tp]
        # The timer was set for the head: it is due. So is what follows it due as early.
        due_ms = held[0][0].due_at_ms
        while held and held[0][0].due_at_ms <= due_ms:
            self._due(*held.popleft())
        if held:
            wait = (held[0][0].due_at_ms - due_ms) / 1000
            asyncio.get_running_loop().call_later(wait, self._release, tp)
        else:
            del self._held[tp]

    def _due(self, record: RetryRecord, tracker: PartitionTracker, offset: int) -> None:
        if tracker.revoked or self._closing:
            # Held past a revoke or shutdown: leave it to the next owner (uncommitted).
            tracker.abandon(offset)
            self._backpressure.finished()
            self._handback.check()
            return
        self._metrics.retry_lateness.observe(max(0.0, self._clock() - record.due_at_ms / 1000))
        source = record.source
        try:
            event = decode_event(
                source.value, record.kind, (source.topic, source.partition, source.offset)
            )
        except InvalidEventError as exc:  # cannot happen for records we wrote; be safe
            work = Work(tracker, offset, source, record.kind, None, record.first_attempt_at_ms)
            letter = DeadLetter(
                "invalid_event", record.attempt - 1, exc.detail, record.last_error,
                record.last_status,
            )  # fmt: skip
            self._settler.settle(work, letter)
            return
        work = Work(tracker, offset, source, record.kind, event, record.first_attempt_at_ms)
        self._submitter.resubmit(work, record.attempt)

    def _wait_until_due(self, tracker: PartitionTracker, offset: int, due_at_ms: int) -> None:
        tp = (tracker.topic, tracker.partition)
        self._post(Pause((tp,)))
        self._post(Seek(tp, offset))
        delay = max(0.0, due_at_ms / 1000 - self._clock() - RESUME_EARLY)
        self.waiting[tp] = asyncio.get_running_loop().call_later(delay, self._resume, tp)
        self._paused.inc()

    def _resume(self, tp: TP) -> None:
        if tp not in self.waiting:
            return
        self.waiting[tp] = None
        # Stop ignoring the partition only after the resume took effect, so that batches
        # fetched before the seek (already queued to the loop) are still dropped.
        self._post(Resume((tp,), then=lambda: self._stop_waiting(tp)))

    def _stop_waiting(self, tp: TP) -> None:
        if tp in self.waiting and self.waiting[tp] is None:
            del self.waiting[tp]
            self._paused.dec()
