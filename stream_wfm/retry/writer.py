"""Writing retry and dead-letter records (docs/contract.md §6).

:class:`RetryWriter` turns a failed or deferred event into a retry-tier record,
and anything that cannot be delivered into a DLQ record described by one value,
:class:`DeadLetter`. Records go through the idempotent producer; the returned
future resolves when the broker acknowledged the record (or fails with a
:class:`~stream_wfm.kafka.producer.ProduceError` whose ``retriable`` flag says
whether writing it again can help). Records never hold integration header
values: they are built from the input record (its value and Kafka headers as they
were) and the outcome only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stream_wfm.events import EventKind
from stream_wfm.kafka.producer import AsyncProducer
from stream_wfm.ops.metrics import Metrics
from stream_wfm.retry.policy import retry_due_at
from stream_wfm.retry.records import (
    DlqRecord,
    RetryRecord,
    SourceRecord,
    encode_dlq_record,
    encode_retry_record,
)

log = logging.getLogger(__name__)

__all__ = ["DeadLetter", "Failed", "RetryWriter"]


class Failed(Protocol):
    """What the writer reads of a piece of work (``pipeline.work.Work``)."""

    @property
    def source(self) -> SourceRecord: ...

    @property
    def kind(self) -> EventKind | None: ...

    @property
    def account_id(self) -> str | None: ...

    @property
    def event_id(self) -> str: ...

    @property
    def first_attempt_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why an event is dead-lettered, and what its last attempt saw.

    ``attempts`` counts the delivery attempts made (0: none, e.g. an invalid
    event); ``detail`` explains a reason that is not an attempt's outcome.
    """

    reason: str
    attempts: int = 0
    detail: str | None = None
    last_error: str | None = None
    last_status: int | None = None
    #: Write the source record's value as its size and SHA-256 only (the whole record
    #: would be larger than the producer may send).
    omit_value: bool = False


class RetryWriter:
    """Writes retry-tier and DLQ records."""

    def __init__(
        self,
        producer: AsyncProducer,
        *,
        retry_topic_prefix: str,
        tiers: tuple[tuple[str, int], ...],
        dlq_topic: str,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._producer = producer
        self._tiers = tiers
        self._tier_topics = [f"{retry_topic_prefix}.{name}" for name, _ in tiers]
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._clock = clock
        self._scheduled = [metrics.retries_scheduled.labels(name) for name, _ in tiers]

    def retry(
        self,
        work: Failed,
        *,
        retry_number: int,
        next_attempt: int,
        last_error: str | None,
        last_status: int | None,
        retry_after: float | None,
    ) -> asyncio.Future[Any]:
        """Write ``work`` to the tier of retry ``retry_number`` (1-based; the retry policy
        picks the tier and due time, honouring ``retry_after``), to be attempted as
        attempt ``next_attempt``."""
        tier, due_ms = self.plan(retry_number, retry_after)
        return self.write_retry(
            work, tier, due_ms, next_attempt=next_attempt, last_error=last_error,
            last_status=last_status,
        )  # fmt: skip

    def plan(self, retry_number: int, retry_after: float | None) -> tuple[int, int]:
        """``(tier index, due time in Unix ms)`` of retry ``retry_number`` written now."""
        tier, due = retry_due_at(self._clock(), retry_number, self._tiers, retry_after)
        return tier, int(due * 1000)

    def write_retry(
        self,
        work: Failed,
        tier: int,
        due_ms: int,
        *,
        next_attempt: int,
        last_error: str | None,
        last_status: int | None,
        key: bytes | None = None,
    ) -> asyncio.Future[Any]:
        """Write ``work`` to tier ``tier``, due at ``due_ms``, to be attempted as attempt
        ``next_attempt``; keyed ``key``, else like its input record."""
        kind = work.kind
        assert kind is not None, "only decoded events are retried"
        record = RetryRecord(
            source=work.source,
            account_id=work.account_id,
            event_id=work.event_id,
            kind=kind,
            attempt=next_attempt,
            due_at_ms=due_ms,
            last_error=last_error,
            last_status=last_status,
            first_attempt_at_ms=work.first_attempt_ms or int(self._clock() * 1000),
        )
        self._scheduled[tier].inc()
        return self._producer.produce(
            self._tier_topics[tier], encode_retry_record(record), key=key or work.source.key
        )

    def dead_letter(self, work: Failed, letter: DeadLetter) -> asyncio.Future[Any]:
        record = DlqRecord(
            source=work.source.without_value() if letter.omit_value else work.source,
            account_id=work.account_id,
            event_id=work.event_id,
            kind=work.kind,
            attempts=letter.attempts,
            reason=letter.reason,
            detail=letter.detail,
            last_error=letter.last_error,
            last_status=letter.last_status,
            first_attempt_at_ms=work.first_attempt_ms or None,
            dead_lettered_at_ms=int(self._clock() * 1000),
        )
        self._metrics.dead_letters.labels(letter.reason).inc()
        log.warning(
            "event dead-lettered",
            extra={
                "account_id": record.account_id,
                "event_id": record.event_id,
                "reason": letter.reason,
                "attempts": letter.attempts,
                "error": letter.last_error or letter.detail,
            },
        )
        return self._producer.produce(
            self._dlq_topic, encode_dlq_record(record), key=work.source.key
        )
