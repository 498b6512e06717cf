"""Dead-letter tools: read the DLQ topic, filter it, and redrive dead letters.

Used by ``stream-wfm dlq list|redrive`` and the admin console; nothing here prints.

Reading (:func:`read_dead_letters`) assigns every partition of the DLQ topic
from the beginning, without a consumer group and without committing, and
reads until every partition reported partition EOF (the high watermark is not
reliable on every broker). Records that are not DLQ records are skipped and
counted (:attr:`DeadLetters.undecodable`).

Redriving (:func:`redrive`) re-delivers through the *normal* pipeline: for
each dead letter it writes a retry record to the first retry tier, due now,
with ``attempt = 1``. The service picks it up like any retry: it joins the
event with the account's *current* config (a fixed URL or rotated credential
applies; a removed or disabled integration drops it, counted), delivers it
with the original ``X-WFM-Event-Id`` (receivers can drop duplicates), and on
failure retries and dead-letters it again as usual. ``attempt = 1`` means the
redriven event gets a fresh retry budget: the integration's ``max_retries``
retries after the redriven attempt, exactly as a new event would. Nothing is
deleted from the DLQ topic; a dead letter redriven twice is delivered twice.

Invalid events (reason ``invalid_event``, or no account) cannot be delivered
and are skipped. Each redrive run writes one audit log line (logger
``stream_wfm.retry.dlq``, message ``dlq redrive``).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from stream_wfm.errors import StreamWfmError
from stream_wfm.kafka.config import producer_config, reader_config
from stream_wfm.retry.records import (
    DlqRecord,
    InvalidDlqRecordError,
    RetryRecord,
    decode_dlq_record,
    encode_dlq_record,
    encode_retry_record,
)
from stream_wfm.settings import Settings

__all__ = [
    "DeadLetter",
    "DeadLetters",
    "DlqError",
    "DlqFilter",
    "RedriveError",
    "RedriveReport",
    "dead_letter_to_dict",
    "read_dead_letters",
    "redrive",
]

log = logging.getLogger(__name__)

#: Result texts of a :class:`RedriveReport` item.
REDRIVEN: Final = "redriven"
WOULD_REDRIVE: Final = "would redrive"
INVALID_EVENT: Final = "invalid_event"
_AUDIT_EVENT_IDS: Final = 20
_ACK_TIMEOUT: Final = 30.0  # seconds to wait for acknowledgements
# consume() waits this long unless a full batch arrives: keep it short, EOF comes fast.
_BATCH_WAIT: Final = 0.05


class DlqError(StreamWfmError):
    """The DLQ topic could not be read, or a redrive was not acknowledged."""


class RedriveError(DlqError):
    """Some retry records of a redrive were not acknowledged; ``report`` says which."""

    def __init__(self, message: str, report: RedriveReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class DeadLetter:
    """One record of the DLQ topic and where it is."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    record: DlqRecord

    @property
    def position(self) -> str:
        """``topic[partition]@offset``."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


class DeadLetters(list[DeadLetter]):
    """What :func:`read_dead_letters` returns: the matching dead letters, oldest first,
    and in :attr:`undecodable` how many DLQ records could not be decoded (skipped)."""

    def __init__(self, items: Iterable[DeadLetter] = (), undecodable: int = 0) -> None:
        super().__init__(items)
        self.undecodable = undecodable


@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters to pick. Unset fields match everything.

    The time window applies to ``record.dead_lettered_at_ms`` (unix ms):
    ``since_ms`` is inclusive, ``until_ms`` exclusive, so adjacent windows
    never overlap.
    """

    account_id: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, dead_letter: DeadLetter) -> bool:
        record = dead_letter.record
        if self.account_id is not None and record.account_id != self.account_id:
            return False
        if self.reason is not None and record.reason != self.reason:
            return False
        at = record.dead_lettered_at_ms
        if self.since_ms is not None and at < self.since_ms:
            return False
        return self.until_ms is None or at < self.until_ms


def dead_letter_to_dict(dead_letter: DeadLetter) -> dict[str, Any]:
    """The dead letter as JSON-ready data: ``dlq`` (its position) plus the DLQ record's
    fields as on the topic (``schemas/dlq-record.schema.json``)."""
    record: dict[str, Any] = orjson.loads(encode_dlq_record(dead_letter.record))
    return {
        "dlq": {
            "topic": dead_letter.topic,
            "partition": dead_letter.partition,
            "offset": dead_letter.offset,
            "timestamp_ms": dead_letter.timestamp_ms,
        },
        **record,
    }


# --- reading -------------------------------------------------------------------------


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    try:
        # A plain list_topics() never auto-creates the topic.
        topics = consumer.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise DlqError(f"broker not reachable: {exc.args[0]}") from None
    meta = topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise DlqError(f"dead-letter topic {topic} does not exist (run: stream-wfm topics create)")
    return sorted(meta.partitions)


def _dead_letter(msg: Message, topic: str) -> DeadLetter | None:
    """The dead letter in ``msg``, or None when it is not a DLQ record."""
    value, partition, offset = msg.value(), msg.partition(), msg.offset()
    if value is None or partition is None or offset is None:
        return None
    try:
        record = decode_dlq_record(value)
    except InvalidDlqRecordError:
        return None
    ts_type, ts = msg.timestamp()
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
        record=record,
    )


def _order(dead_letter: DeadLetter) -> tuple[int, int, int]:
    return (dead_letter.record.dead_lettered_at_ms, dead_letter.partition, dead_letter.offset)


class _Newest:
    """Keeps every match, or only the newest ``limit`` of them (by dead-letter time)."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._heap: list[tuple[tuple[int, int, int], DeadLetter]] = []

    def add(self, dead_letter: DeadLetter) -> None:
        item = (_order(dead_letter), dead_letter)
        if self._limit is None or len(self._heap) < self._limit:
            heapq.heappush(self._heap, item)
        elif self._limit > 0 and item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def sorted(self) -> list[DeadLetter]:
        return [dl for _key, dl in sorted(self._heap, key=lambda pair: pair[0])]


def read_dead_letters(
    settings: Settings, flt: DlqFilter, *, limit: int | None = None, timeout: float = 30.0
) -> list[DeadLetter]:
    """The dead letters matching ``flt``, oldest first (by dead-letter time).

    Reads the DLQ topic from the beginning to partition EOF on every
    partition; never joins a group or commits. With ``limit``, only the newest
    ``limit`` matches are kept. The result is a :class:`DeadLetters` list
    whose ``undecodable`` counts skipped records. Raises :class:`DlqError`
    when the topic is missing, the broker unreachable, or the topic was not
    read to its end within ``timeout`` seconds.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    topic = settings.dlq_topic
    deadline = time.monotonic() + timeout
    consumer = Consumer(reader_config(settings, "stream-wfm-dlq"))
    try:
        partitions = _partitions(consumer, topic, timeout)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        left = set(partitions)
        kept = _Newest(limit)
        undecodable = 0
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DlqError(
                    f"{topic} not read to its end within {timeout:g}s "
                    f"(partitions {sorted(left)} left)"
                )
            for msg in consumer.consume(num_messages=500, timeout=min(_BATCH_WAIT, remaining)):
                err = msg.error()
                if err is None:
                    dead_letter = _dead_letter(msg, topic)
                    if dead_letter is None:
                        undecodable += 1
                    elif flt.matches(dead_letter):
                        kept.add(dead_letter)
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                elif err.fatal():
                    raise DlqError(f"cannot read {topic}: {err}")
                else:
                    log.warning("dlq read error", extra={"topic": topic, "error": str(err)})
    finally:
        consumer.close()
    if undecodable:
        log.warning("undecodable DLQ records skipped", extra={"topic": topic, "count": undecodable})
    return DeadLetters(kept.sorted(), undecodable)


# --- redriving -----------------------------------------------------------------------


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


def skip_reason(dead_letter: DeadLetter) -> str | None:
    """Why ``dead_letter`` cannot be redriven, or None when it can."""
    record = dead_letter.record
    if record.reason == INVALID_EVENT:
        return "invalid event (nothing to deliver)"
    if record.account_id is None:
        return "no account (not a decodable event)"
    return None


def _item(dead_letter: DeadLetter, result: str) -> dict[str, Any]:
    record = dead_letter.record
    return {
        "event_id": record.event_id,
        "account_id": record.account_id,
        "kind": record.kind.value,
        "reason": record.reason,
        "dlq": dead_letter.position,
        "dlq_topic": dead_letter.topic,
        "dlq_partition": dead_letter.partition,
        "dlq_offset": dead_letter.offset,
        "result": result,
    }


def redrive_record(dead_letter: DeadLetter, now_ms: int) -> RetryRecord:
    """The retry record that re-delivers ``dead_letter``: due now, attempt 1 (a fresh
    retry budget), the original source record, event id, account and kind."""
    record = dead_letter.record
    return RetryRecord(
        source=record.source,
        account_id=record.account_id,
        event_id=record.event_id,
        kind=record.kind,
        attempt=1,
        due_at_ms=now_ms,
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
    dead_letters: Sequence[DeadLetter],
    *,
    rate: float | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RedriveReport:
    """Re-deliver ``dead_letters`` through the service's normal retry path.

    Writes one retry record per dead letter to the first retry tier, due now,
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
                record = redrive_record(dead_letter, int(time.time() * 1000))
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
