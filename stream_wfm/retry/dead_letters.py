"""Reading the dead-letter topic: every dead letter, or those a filter picks.

Used by ``stream-wfm dlq list|redrive``, the admin console and the demo's summary;
nothing here prints. :func:`read_dead_letters` assigns every partition of the DLQ
topic from the beginning, without a consumer group and without committing, and
reads until every partition reported partition EOF (the high watermark is not
reliable on every broker). Records that are not DLQ records are skipped and
counted (:attr:`DlqEntries.undecodable`).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable
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
    TopicPartition,
)

from stream_wfm.kafka.config import reader_config
from stream_wfm.retry.exceptions import DlqError
from stream_wfm.retry.records import (
    DlqRecord,
    InvalidDlqRecordError,
    decode_dlq_record,
    encode_dlq_record,
)
from stream_wfm.settings import Settings

__all__ = [
    "DlqEntries",
    "DlqEntry",
    "DlqFilter",
    "dead_letter_to_dict",
    "read_dead_letters",
]

log = logging.getLogger(__name__)

# consume() waits this long unless a full batch arrives: keep it short, EOF comes fast.
_BATCH_WAIT: Final = 0.05


@dataclass(frozen=True)
class DlqEntry:
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


class DlqEntries(list[DlqEntry]):
    """What :func:`read_dead_letters` returns: the matching dead letters, oldest first,
    and in :attr:`undecodable` how many DLQ records could not be decoded (skipped)."""

    def __init__(self, items: Iterable[DlqEntry] = (), undecodable: int = 0) -> None:
        super().__init__(items)
        self.undecodable = undecodable


@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters to pick. Unset fields match everything.

    The time window applies to ``record.dead_lettered_at_ms`` (unix ms):
    ``since_ms`` is inclusive, ``until_ms`` exclusive, so adjacent windows
    never overlap. ``reasons`` picks any of several reasons (a re-enable
    redrives ``endpoint_disabled`` and ``retries_exhausted``); with ``reason``
    too, a dead letter must match both.
    """

    account_id: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    reasons: frozenset[str] | None = None

    def matches(self, dead_letter: DlqEntry) -> bool:
        record = dead_letter.record
        if self.account_id is not None and record.account_id != self.account_id:
            return False
        if self.reason is not None and record.reason != self.reason:
            return False
        if self.reasons is not None and record.reason not in self.reasons:
            return False
        at = record.dead_lettered_at_ms
        if self.since_ms is not None and at < self.since_ms:
            return False
        return self.until_ms is None or at < self.until_ms


def dead_letter_to_dict(dead_letter: DlqEntry) -> dict[str, Any]:
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


def _dead_letter(msg: Message, topic: str) -> DlqEntry | None:
    """The dead letter in ``msg``, or None when it is not a DLQ record."""
    value, partition, offset = msg.value(), msg.partition(), msg.offset()
    if value is None or partition is None or offset is None:
        return None
    try:
        record = decode_dlq_record(value)
    except InvalidDlqRecordError:
        return None
    ts_type, ts = msg.timestamp()
    return DlqEntry(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
        record=record,
    )


def _order(dead_letter: DlqEntry) -> tuple[int, int, int]:
    return (dead_letter.record.dead_lettered_at_ms, dead_letter.partition, dead_letter.offset)


class _Newest:
    """Keeps every match, or only the newest ``limit`` of them (by dead-letter time)."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._heap: list[tuple[tuple[int, int, int], DlqEntry]] = []

    def add(self, dead_letter: DlqEntry) -> None:
        item = (_order(dead_letter), dead_letter)
        if self._limit is None or len(self._heap) < self._limit:
            heapq.heappush(self._heap, item)
        elif self._limit > 0 and item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def sorted(self) -> list[DlqEntry]:
        return [dl for _key, dl in sorted(self._heap, key=lambda pair: pair[0])]


def read_dead_letters(
    settings: Settings, flt: DlqFilter, *, limit: int | None = None, timeout: float = 30.0
) -> list[DlqEntry]:
    """The dead letters matching ``flt``, oldest first (by dead-letter time).

    Reads the DLQ topic from the beginning to partition EOF on every
    partition; never joins a group or commits. With ``limit``, only the newest
    ``limit`` matches are kept. The result is a :class:`DlqEntries` list
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
    return DlqEntries(kept.sorted(), undecodable)
