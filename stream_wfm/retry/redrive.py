"""Redriving dead letters: re-delivering them through the normal pipeline.

For each dead letter :func:`redrive` writes a retry record to the first retry
tier, due now, with ``attempt = 1``. The service picks it up like any retry: it
joins the event with the account's *current* config (a fixed URL or rotated
credential applies; a removed or disabled integration drops it, counted),
delivers it with the original ``X-WFM-Event-Id`` (receivers can drop
duplicates), and on failure retries and dead-letters it again as usual.
``attempt = 1`` means the redriven event gets a fresh retry budget: the
integration's ``max_retries`` retries after the redriven attempt, exactly as a
new event would. Nothing is deleted from the DLQ topic; a dead letter redriven
twice is delivered twice.

Invalid events (reason ``invalid_event``, or no account or kind) and dead
letters whose source value was not kept (``record_too_large``) cannot be
delivered and are skipped. Each redrive run writes one audit log line (logger
``stream_wfm.retry.redrive``, message ``dlq redrive``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import (
    KafkaError,
    KafkaException,
    Message,
    Producer,
)

from stream_wfm.kafka.config import producer_config
from stream_wfm.retry.dead_letters import DlqEntry
from stream_wfm.retry.exceptions import DlqError, RedriveError
from stream_wfm.retry.records import (
    RetryRecord,
    encode_retry_record,
)
from stream_wfm.settings import Settings

__all__ = ["RedriveReport", "redrive", "redrive_record", "skip_reason"]

log = logging.getLogger(__name__)

#: Result texts of a :class:`RedriveReport` item.
REDRIVEN: Final = "redriven"
WOULD_REDRIVE: Final = "would redrive"
INVALID_EVENT: Final = "invalid_event"
_AUDIT_EVENT_IDS: Final = 20
_ACK_TIMEOUT: Final = 30.0  # seconds to wait for acknowledgements


@dataclass
class RedriveReport:
    """What a redrive did (or, in a dry run, would do).

    ``planned``: dead letters that can be redriven (the skipped ones excluded);
    ``redriven``: retry records the broker acknowledged (0 in a dry run);
    ``skipped``: dead letters that cannot be redriven. ``items`` has one dict
    per dead letter, in order: ``event_id``, ``account_id``, ``kind``,
    ``reason``, ``dlq`` (``topic[partition]@offset``), ``dlq_topic``,
    ``dlq_partition``, ``dlq_offset`` and ``result`` (``"redriven"``,
    ``"would redrive"``, ``"skipped: <why>"`` or ``"failed: <error>"``).
    """

    planned: int
    redriven: int
    skipped: int
    dry_run: bool
    items: list[dict[str, Any]]


def skip_reason(dead_letter: DlqEntry) -> str | None:
    """Why ``dead_letter`` cannot be redriven, or None when it can."""
    record = dead_letter.record
    if record.reason == INVALID_EVENT:
        return "invalid event (nothing to deliver)"
    if record.account_id is None or record.kind is None:
        return "no account (not a decodable event)"
    if record.source.value_omitted:
        return "event too large: its value was not kept (record_too_large)"
    return None


def _item(dead_letter: DlqEntry, result: str) -> dict[str, Any]:
    record = dead_letter.record
    return {
        "event_id": record.event_id,
        "account_id": record.account_id,
        "kind": None if record.kind is None else record.kind.value,
        "reason": record.reason,
        "dlq": dead_letter.position,
        "dlq_topic": dead_letter.topic,
        "dlq_partition": dead_letter.partition,
        "dlq_offset": dead_letter.offset,
        "result": result,
    }


def redrive_record(dead_letter: DlqEntry, now_ms: int, due_in_ms: int = 0) -> RetryRecord:
    """The retry record that re-delivers ``dead_letter``: due ``due_in_ms`` after
    ``now_ms``, attempt 1 (a fresh
    retry budget), the original source record (its value as it was and its Kafka
    headers, so a ``traceparent`` goes on with the redriven attempt), event id, account
    and kind. Only for a dead letter :func:`skip_reason` lets through (its kind is
    known)."""
    record = dead_letter.record
    assert record.kind is not None, "skip_reason() refuses dead letters of unknown kind"
    return RetryRecord(
        source=record.source,
        account_id=record.account_id,
        event_id=record.event_id,
        kind=record.kind,
        attempt=1,
        due_at_ms=now_ms + due_in_ms,
        last_error=f"redrive of dlq {dead_letter.position}",
        last_status=record.last_status,
        first_attempt_at_ms=record.first_attempt_at_ms or now_ms,
    )


class _Pacer:
    """At most ``rate`` calls of :meth:`wait` per second (evenly spaced); None: no limit."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError("rate must be a positive number of records per second")
        self._interval = None if rate is None else 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        if self._interval is None:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            self._sleep(self._next - now)  # CLI pacing, not synchronisation
            now = self._next
        self._next = now + self._interval


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)  # local queue full: serve delivery reports, then try again
            continue
        except KafkaException as exc:
            raise DlqError(f"cannot write to {topic}: {exc.args[0]}") from None
        producer.poll(0)
        return


def redrive(
    settings: Settings,
    dead_letters: Sequence[DlqEntry],
    *,
    rate: float | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    due_in: float = 0.0,
) -> RedriveReport:
    """Re-deliver ``dead_letters`` through the service's normal retry path.

    Writes one retry record per dead letter to the first retry tier, due now (or
    ``due_in`` seconds after it is written),
    ``attempt = 1`` (see the module docstring), at most ``rate`` records per
    second, with an idempotent producer, and waits for the broker's
    acknowledgements. Invalid events are skipped. ``progress(done, total)`` is
    called after each dead letter. A dry run writes nothing. Raises
    :class:`RedriveError`, with the report, when some record was refused or
    not acknowledged within 30 s (after a refusal nothing more is written; the
    acknowledged records stay written and will be delivered).
    """
    topic = settings.retry_topics()[0]
    total = len(dead_letters)
    items: list[dict[str, Any]] = []
    pacer = _Pacer(rate)
    producer = None if dry_run else Producer(producer_config(settings, "stream-wfm-dlq-redrive"))
    acked = 0
    stopped_by: str | None = None  # the producer refused a record: write no more
    started = time.monotonic()

    def acknowledge(item: dict[str, Any]) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal acked
            if err is None:
                item["result"] = REDRIVEN
                acked += 1
            else:
                item["result"] = f"failed: {err}"

        return on_delivery

    try:
        for done, dead_letter in enumerate(dead_letters, 1):
            why = skip_reason(dead_letter)
            if why is not None:
                items.append(_item(dead_letter, f"skipped: {why}"))
            elif producer is None:
                items.append(_item(dead_letter, WOULD_REDRIVE))
            elif stopped_by is not None:
                items.append(_item(dead_letter, "failed: not attempted after an earlier error"))
            else:
                item = _item(dead_letter, "failed: not acknowledged")
                items.append(item)
                pacer.wait()
                record = redrive_record(dead_letter, int(time.time() * 1000), int(due_in * 1000))
                try:
                    _produce(producer, topic, encode_retry_record(record), record.source.key,
                             acknowledge(item))  # fmt: skip
                except DlqError as exc:
                    stopped_by = item["result"] = f"failed: {exc}"
            if progress is not None:
                progress(done, total)

        if producer is not None:
            producer.flush(_ACK_TIMEOUT)  # what is still unacknowledged afterwards has failed
    finally:
        if producer is not None:
            producer.close()
    skipped = sum(1 for item in items if item["result"].startswith("skipped:"))
    failures = [item["result"] for item in items if item["result"].startswith("failed:")]
    report = RedriveReport(
        planned=total - skipped, redriven=acked, skipped=skipped, dry_run=dry_run, items=items
    )
    _audit(settings, topic, report, rate, time.monotonic() - started, failed=len(failures))
    if failures:
        raise RedriveError(
            f"{len(failures)} of {report.planned} dead letters were not redriven "
            f"({failures[0]}); {acked} were written and will be delivered",
            report,
        )
    return report


def _audit(
    settings: Settings,
    retry_topic: str,
    report: RedriveReport,
    rate: float | None,
    seconds: float,
    *,
    failed: int,
) -> None:
    picked = [item["event_id"] for item in report.items if not item["result"].startswith("skip")]
    shown = ",".join(picked[:_AUDIT_EVENT_IDS]) + (",..." if len(picked) > _AUDIT_EVENT_IDS else "")
    log.log(
        logging.ERROR if failed else logging.INFO,
        "dlq redrive",
        extra={
            "audit": "dlq_redrive",
            "dry_run": report.dry_run,
            "dlq_topic": settings.dlq_topic,
            "retry_topic": retry_topic,
            "planned": report.planned,
            "redriven": report.redriven,
            "skipped": report.skipped,
            "failed": failed,
            "rate": rate,
            "seconds": round(seconds, 3),
            "event_ids": shown,
        },
    )
