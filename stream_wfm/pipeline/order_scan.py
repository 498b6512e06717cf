"""Which keys wait in the retry tiers, read back when partitions are assigned
(docs/contract.md §11).

After a restart or a rebalance, :class:`~stream_wfm.pipeline.order.KeyOrder` is empty,
yet events may wait in the retry tiers. With the ``range`` assignor and retry tiers
that have the input topics' partition count, the member assigned input partition *p*
is assigned retry partition *p* of every tier, which holds the retry records of *p*'s
keys (they are keyed alike). :func:`scan_waiting` reads those retry partitions from the
group's committed offset to their end — on the consumer thread, inside the assignment
callback, so before the first record of the new assignment is fetched — and returns
each waiting event: its input partition, ordering key, input offset, tier and due time.
Records that are not retry records, or whose event cannot be decoded, are skipped (the
retry gate dead-letters them when it reaches them).
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from stream_wfm.events import InvalidEventError, decode_event
from stream_wfm.pipeline.commands import TP
from stream_wfm.retry.records import InvalidRetryRecordError, decode_retry_record

log = logging.getLogger(__name__)

__all__ = ["WaitingEvent", "scan_waiting"]


class WaitingEvent(NamedTuple):
    tp: TP  # the input partition it came from
    key: str  # its ordering key
    offset: int  # its input offset
    tier: int
    due_ms: int


def scan_waiting(
    group_consumer: Consumer,
    partitions: list[TopicPartition],
    *,
    reader_config: dict[str, Any],
    tier_of: dict[str, int],
    timeout: float = 30.0,
) -> list[WaitingEvent]:
    """The events waiting in the retry partitions among ``partitions`` (``tier_of`` maps
    each retry topic to its tier index), from ``group_consumer``'s committed offsets to
    the partitions' end as of now; at most ``timeout`` seconds."""
    retry = [TopicPartition(tp.topic, tp.partition) for tp in partitions if tp.topic in tier_of]
    if not retry:
        return []
    started = time.monotonic()
    try:
        committed = group_consumer.committed(retry, timeout=timeout)
    except KafkaException as exc:
        log.warning(
            "could not read committed offsets to rebuild key order", extra={"error": str(exc)}
        )
        return []
    reader = Consumer(reader_config)
    try:
        starts, ends = _ranges(reader, committed, timeout)
        if not starts:
            return []
        reader.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
        waiting = _read(reader, ends, tier_of, started + timeout)
    finally:
        reader.close()
    log.info(
        "key order rebuilt from the retry tiers",
        extra={
            "events": len(waiting),
            "partitions": len(ends),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return waiting


def _ranges(
    reader: Consumer, committed: list[TopicPartition], timeout: float
) -> tuple[dict[TP, int], dict[TP, int]]:
    """Where to start (the committed offset, else the oldest record) and where the end is
    (the high watermark now), for the partitions with records in between."""
    starts: dict[TP, int] = {}
    ends: dict[TP, int] = {}
    for tp in committed:
        low, high = reader.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=timeout, cached=False
        )
        start = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else low
        start = max(start, low)
        if start < high:
            key = (tp.topic, tp.partition)
            starts[key] = start
            ends[key] = high
    return starts, ends


def _read(
    reader: Consumer, ends: dict[TP, int], tier_of: dict[str, int], deadline: float
) -> list[WaitingEvent]:
    waiting: list[WaitingEvent] = []
    left = dict(ends)
    while left and time.monotonic() < deadline:
        for msg in reader.consume(num_messages=1000, timeout=0.2):
            if msg.error() is not None:
                continue
            topic: str = msg.topic()  # type: ignore[assignment]
            tp = (topic, msg.partition())
            offset: int = msg.offset()  # type: ignore[assignment]
            end = left.get(tp)  # type: ignore[arg-type]
            if end is None:
                continue
            found = _waiting_event(msg.value(), tier_of[topic])
            if found is not None:
                waiting.append(found)
            if offset + 1 >= end:
                del left[tp]  # type: ignore[arg-type]
    if left:
        log.warning(
            "key order rebuilt only in part: retry partitions not read to the end in time",
            extra={"partitions": sorted(f"{t}[{p}]" for t, p in left)},
        )
    return waiting


def _waiting_event(value: bytes | None, tier: int) -> WaitingEvent | None:
    try:
        record = decode_retry_record(value or b"")
        source = record.source
        event = decode_event(
            source.value, record.kind, (source.topic, source.partition, source.offset)
        )
    except (InvalidRetryRecordError, InvalidEventError):
        return None
    return WaitingEvent(
        (source.topic, source.partition), event.order_key, source.offset, tier, record.due_at_ms
    )
