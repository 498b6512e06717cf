"""Where a failed delivery goes: the next retry tier, or the dead-letter topic.

Records are written with the idempotent producer; the returned future
resolves when the broker acknowledged the record, and only then does the
pipeline finish (and later commit) the source offset. Records never hold
integration header values: they are built from the input record and the
outcome only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from stream_wfm.delivery.outcome import Outcome
from stream_wfm.kafka.producer import AsyncProducer
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.policy import next_step, retry_due_at
from stream_wfm.retry.records import DlqRecord, RetryRecord, encode_dlq_record, encode_retry_record

log = logging.getLogger(__name__)


class FailureRouter:
    """Writes retry and DLQ records for failed work."""

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

    def after_failure(
        self, work: Work, outcome: Outcome, attempt: int, max_retries: int
    ) -> asyncio.Future[Any]:
        """Retry or dead-letter ``work`` whose delivery ``attempt`` ended with ``outcome``."""
        if next_step(attempt, max_retries, outcome) == "retry":
            return self.retry(work, outcome, attempt)
        reason = outcome.reason or "retries_exhausted"
        return self.dead_letter(work, reason, None, attempt, outcome.error, outcome.status)

    def retry(self, work: Work, outcome: Outcome, attempt: int) -> asyncio.Future[Any]:
        event = work.event
        assert event is not None
        now = self._clock()
        tier, due = retry_due_at(now, attempt, self._tiers, outcome.retry_after)
        record = RetryRecord(
            source=work.source,
            account_id=event.account_id,
            event_id=event.event_id,
            kind=event.kind,
            attempt=attempt + 1,
            due_at_ms=int(due * 1000),
            last_error=outcome.error,
            last_status=outcome.status,
            first_attempt_at_ms=work.first_attempt_ms or int(now * 1000),
        )
        self._scheduled[tier].inc()
        return self._producer.produce(
            self._tier_topics[tier], encode_retry_record(record), key=work.source.key
        )

    def dead_letter(
        self,
        work: Work,
        reason: str,
        detail: str | None,
        attempts: int,
        last_error: str | None,
        last_status: int | None,
    ) -> asyncio.Future[Any]:
        event = work.event
        record = DlqRecord(
            source=work.source,
            account_id=None if event is None else event.account_id,
            event_id=(
                f"{work.source.topic}:{work.source.partition}:{work.source.offset}"
                if event is None
                else event.event_id
            ),
            kind=work.kind,
            attempts=attempts,
            reason=reason,
            detail=detail,
            last_error=last_error,
            last_status=last_status,
            first_attempt_at_ms=work.first_attempt_ms or None,
            dead_lettered_at_ms=int(self._clock() * 1000),
        )
        self._metrics.dead_letters.labels(reason).inc()
        log.warning(
            "event dead-lettered",
            extra={
                "account_id": record.account_id,
                "event_id": record.event_id,
                "reason": reason,
                "attempts": attempts,
                "error": last_error or detail,
            },
        )
        return self._producer.produce(
            self._dlq_topic, encode_dlq_record(record), key=work.source.key
        )
