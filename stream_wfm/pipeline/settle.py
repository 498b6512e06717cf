"""Settling work: the one place that decides what happens to an event that is not
simply delivered, and carries it out.

A piece of :class:`~stream_wfm.pipeline.work.Work` ends in one of four ways
(a :data:`Settlement`):

* :data:`FINISH` — delivered, filtered out, or dropped by the current config:
  its offset is finished at once.
* :class:`Retry` — an attempt failed retryably and the event has retries left:
  written to the retry tier of its next attempt (a retry is spent).
* :class:`Defer` — the event is not attempted now (its endpoint's breaker is open,
  its endpoint is over its fair share of the buffer), or its attempt does not count
  (a 429 or a ``Retry-After``, a failed probe; docs/contract.md §10): written to the
  first retry tier it belongs to with its attempt number unchanged, so deferring
  never spends a retry nor dead-letters an event.
* :class:`~stream_wfm.retry.writer.DeadLetter` — permanent failure, retries
  exhausted, or a record that is not a valid event: written to the DLQ.

The offset of a written record is finished only once the broker acknowledged the
record (at-least-once). A write that fails with an error whose ``retriable`` flag
is set is tried again a second later. One that cannot succeed is never retried
(:func:`refused`): a record too large to send becomes a dead letter
``record_too_large`` without the source value (its size and SHA-256 instead), a
retry refused for another reason a dead letter ``retry_not_written``; a dead
letter that still cannot be written is logged as an error and its offset finished,
so the partition's commits never stall on it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Final

from stream_wfm.delivery.outcome import Outcome
from stream_wfm.errors import StreamWfmError
from stream_wfm.kafka.producer import ProduceError
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.handback import Handback
from stream_wfm.pipeline.order import KeyOrder
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.policy import next_step
from stream_wfm.retry.writer import DeadLetter, RetryWriter

log = logging.getLogger(__name__)

__all__ = [
    "FINISH",
    "Defer",
    "Finish",
    "Retry",
    "Settlement",
    "Settler",
    "after_attempt",
]


class Finish:
    """Nothing to write: the offset is finished at once (use :data:`FINISH`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FINISH"


FINISH: Final = Finish()


@dataclass(frozen=True, slots=True)
class Retry:
    """Attempt ``attempt`` failed with ``outcome``; attempt ``attempt + 1`` follows from
    the retry tier of retry number ``attempt``."""

    attempt: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Defer:
    """Attempt ``attempt`` is not made now (``outcome`` says why); it is made later, from
    the retry tier of retry number ``attempt - 1`` (the first tier for a first attempt),
    or from tier ``to[0]`` due at ``to[1]`` (Unix ms) when ``to`` is given (behind an
    earlier event of its key, :mod:`stream_wfm.pipeline.order`)."""

    attempt: int
    outcome: Outcome
    to: tuple[int, int] | None = None


Settlement = Finish | Retry | Defer | DeadLetter


def after_attempt(attempt: int, outcome: Outcome, max_retries: int) -> Settlement:
    """How attempt number ``attempt`` (1-based) that ended with ``outcome`` settles, for
    an integration allowing ``max_retries`` retries (the retry policy's ``next_step``).

    A 429 or any retryable answer with a ``Retry-After`` never spends a retry
    (``defer``, docs/contract.md §10)."""
    step = next_step(attempt, max_retries, outcome)
    if step == "done":
        return FINISH
    if step == "defer":
        return Defer(attempt, outcome)
    if step == "retry":
        return Retry(attempt, outcome)
    reason = outcome.reason or "retries_exhausted"
    return DeadLetter(reason, attempt, None, outcome.error, outcome.status)


class Settler:
    """Carries out settlements and finishes offsets. Runs on the event loop."""

    def __init__(
        self,
        writer: RetryWriter,
        backpressure: Backpressure,
        handback: Handback,
        order: KeyOrder | None = None,
        *,
        rewrite_delay: float = 1.0,
    ) -> None:
        """``order``: the keys waiting in retry tiers, told when an event starts or stops
        waiting; ``rewrite_delay``: seconds before a record whose write failed retriably
        is written again."""
        self._writer = writer
        self._backpressure = backpressure
        self._handback = handback
        self._order = order or KeyOrder()
        self._rewrite_delay = rewrite_delay

    def settle(self, work: Work, settlement: Settlement) -> None:
        """Finish ``work`` now (:data:`FINISH`) or once its record is acknowledged."""
        if settlement is FINISH:
            if self._order.active:
                self._no_longer_waiting(work)
            self.finish(work)
            return
        written = self._write(work, settlement)
        written.add_done_callback(lambda f: self._on_written(f, work, settlement))

    def finish(self, work: Work) -> None:
        """``work``'s offset is finished: it may be committed once those before it are."""
        tracker = work.tracker
        tracker.done(work.offset)
        self._backpressure.finished()
        if tracker.revoked and self._handback.waiting:
            self._handback.check()

    def finish_all(self, works: list[Work]) -> None:
        """:meth:`finish` for each of ``works`` (a loop turn's delivered events): the
        pending count and the hand-backs are told once."""
        for work in works:
            work.tracker.done(work.offset)
        self._backpressure.finished(len(works))
        if self._handback.waiting:
            self._handback.check()

    def _write(self, work: Work, settlement: Settlement) -> asyncio.Future[Any]:
        writer = self._writer
        match settlement:
            case Retry(attempt, outcome):
                tier, due_ms = writer.plan(attempt, outcome.retry_after)
                return self._wait(work, tier, due_ms, attempt + 1, outcome)
            case Defer(attempt, outcome, to):
                tier, due_ms = to or writer.plan(attempt - 1, outcome.retry_after)
                return self._wait(work, tier, due_ms, attempt, outcome)
            case DeadLetter():
                if self._order.active:
                    self._no_longer_waiting(work)
                return writer.dead_letter(work, settlement)
        raise AssertionError(f"unknown settlement {settlement!r}")

    def _wait(
        self, work: Work, tier: int, due_ms: int, next_attempt: int, outcome: Outcome
    ) -> asyncio.Future[Any]:
        """Write ``work`` to a retry tier; its key's later events wait behind it."""
        event = work.event
        assert event is not None, "only decoded events are retried"
        source = work.source
        self._order.wait(
            (source.topic, source.partition), event.order_key, source.offset, tier, due_ms
        )
        return self._writer.write_retry(
            work, tier, due_ms, next_attempt=next_attempt, last_error=outcome.error,
            last_status=outcome.status, key=source.key or event.order_key.encode(),
        )  # fmt: skip

    def _no_longer_waiting(self, work: Work) -> None:
        event = work.event
        if event is not None:
            source = work.source
            self._order.done((source.topic, source.partition), event.order_key, source.offset)

    def _on_written(self, future: asyncio.Future[Any], work: Work, settlement: Settlement) -> None:
        if future.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = future.exception()
        if error is None:
            self.finish(work)
            return
        retriable = error.retriable if isinstance(error, StreamWfmError) else True
        extra = {
            "error": str(error),
            "offset": work.offset,
            "topic": work.tracker.topic,
            "event_id": work.event_id,
        }
        if retriable:
            log.error(
                "could not write retry/DLQ record; trying again (the offset stays "
                "uncommitted meanwhile)",
                extra={**extra, "delay": self._rewrite_delay},
            )
            loop = asyncio.get_running_loop()
            loop.call_later(self._rewrite_delay, self.settle, work, settlement)
            return
        letter = refused(settlement, error)
        if letter is None:
            log.error("the producer refused the dead letter; the event is skipped", extra=extra)
            self.finish(work)
            return
        log.error(
            "the producer refused the record; dead-lettering",
            extra={**extra, "reason": letter.reason},
        )
        self.settle(work, letter)


def refused(settlement: Settlement, error: BaseException) -> DeadLetter | None:
    """The dead letter to write instead of ``settlement``'s record, which the producer
    refused for good with ``error``; None when there is nothing smaller left to try.

    A record too large to send (``message.max.bytes``, or the topic's limit) becomes a
    dead letter with reason ``record_too_large`` that carries the source value's size
    and SHA-256 instead of the value; a retry or deferral refused for another reason
    becomes a dead letter ``retry_not_written``.
    """
    too_large = isinstance(error, ProduceError) and error.too_large
    match settlement:
        case Retry(attempt, outcome) | Defer(attempt, outcome, _):
            made = attempt if isinstance(settlement, Retry) else attempt - 1  # deferred: not made
            reason = "record_too_large" if too_large else "retry_not_written"
            return DeadLetter(
                reason, made, str(error), outcome.error, outcome.status, omit_value=too_large
            )
        case DeadLetter() if too_large and not settlement.omit_value:
            return replace(
                settlement,
                reason="record_too_large",
                detail=f"{settlement.reason}: {settlement.detail or error}",
                omit_value=True,
            )
    return None
