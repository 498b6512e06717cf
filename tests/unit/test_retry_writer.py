"""RetryWriter with a fake producer: which topic, key and record a retry, a deferral and
a dead letter become; never a header value."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from stream_wfm.events import EventKind, decode_event
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import SourceRecord, decode_dlq_record, decode_retry_record
from stream_wfm.retry.writer import DeadLetter, RetryWriter

NOW = 1_800_000_000.0
TIERS = (("10s", 10), ("1m", 60), ("10m", 600))
VALUE = b'{"account_id":"1","agent_id":"7","event_type":"LOGIN","event_id":"e-1"}'


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.records.append((topic, value, key))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def writer() -> tuple[RetryWriter, FakeProducer, CollectorRegistry]:
    producer = FakeProducer()
    registry = CollectorRegistry()
    w = RetryWriter(
        producer,  # type: ignore[arg-type]
        retry_topic_prefix="wfm.retry",
        tiers=TIERS,
        dlq_topic="wfm.dlq",
        metrics=Metrics(registry),
        clock=lambda: NOW,
    )
    return w, producer, registry


def event_work(first_attempt_ms: int = 0) -> Work:
    source = SourceRecord("wfm.agent", 2, 40, b"1:7", VALUE, 1_700)
    event = decode_event(VALUE, EventKind.AGENT, ("wfm.agent", 2, 40))
    return Work(
        PartitionTracker("wfm.agent", 2), 40, source, EventKind.AGENT, event, first_attempt_ms
    )


async def test_a_retry_goes_to_its_tier_with_the_next_attempt_number() -> None:
    w, producer, registry = writer()
    await w.retry(
        event_work(first_attempt_ms=1_234), retry_number=2, next_attempt=3,
        last_error="HTTP 503", last_status=503, retry_after=None,
    )  # fmt: skip
    [(topic, value, key)] = producer.records
    assert (topic, key) == ("wfm.retry.1m", b"1:7")
    record = decode_retry_record(value)
    assert (record.attempt, record.due_at_ms) == (3, int((NOW + 60) * 1000))
    assert (record.account_id, record.event_id, record.kind) == ("1", "e-1", EventKind.AGENT)
    assert (record.last_error, record.last_status, record.first_attempt_at_ms) == (
        "HTTP 503", 503, 1_234,
    )  # fmt: skip
    assert record.source == SourceRecord("wfm.agent", 2, 40, b"1:7", VALUE, 1_700)
    assert registry.get_sample_value("stream_wfm_retries_scheduled_total", {"tier": "1m"}) == 1


async def test_retry_after_moves_the_record_to_a_later_tier() -> None:
    w, producer, _ = writer()
    await w.retry(
        event_work(), retry_number=1, next_attempt=2, last_error="HTTP 429", last_status=429,
        retry_after=120.0,
    )  # fmt: skip
    [(topic, value, _key)] = producer.records
    assert topic == "wfm.retry.10m"
    assert decode_retry_record(value).due_at_ms == int((NOW + 120) * 1000)


async def test_a_deferral_of_a_first_attempt_goes_to_the_first_tier() -> None:
    w, producer, _ = writer()
    await w.retry(
        event_work(), retry_number=0, next_attempt=1, last_error="backlog", last_status=None,
        retry_after=None,
    )  # fmt: skip
    [(topic, value, _key)] = producer.records
    assert topic == "wfm.retry.10s"
    assert decode_retry_record(value).attempt == 1
    # Never attempted before: the first attempt time is now.
    assert decode_retry_record(value).first_attempt_at_ms == int(NOW * 1000)


async def test_a_dead_letter_carries_the_reason_and_what_the_last_attempt_saw() -> None:
    w, producer, registry = writer()
    letter = DeadLetter("retries_exhausted", 4, None, "HTTP 503", 503)
    await w.dead_letter(event_work(first_attempt_ms=5), letter)
    [(topic, value, key)] = producer.records
    assert (topic, key) == ("wfm.dlq", b"1:7")
    record = decode_dlq_record(value)
    assert (record.reason, record.attempts, record.detail) == ("retries_exhausted", 4, None)
    assert (record.last_error, record.last_status) == ("HTTP 503", 503)
    assert (record.first_attempt_at_ms, record.dead_lettered_at_ms) == (5, int(NOW * 1000))
    labels = {"reason": "retries_exhausted"}
    assert registry.get_sample_value("stream_wfm_dead_letters_total", labels) == 1


async def test_a_record_that_is_no_event_is_dead_lettered_under_its_coordinates() -> None:
    w, producer, _ = writer()
    source = SourceRecord("wfm.retry.10s", 0, 9, None, b"garbage", None)
    work = Work(PartitionTracker("wfm.retry.10s", 0), 9, source, None, None, 0)
    await w.dead_letter(work, DeadLetter("invalid_retry_record", 0, "not valid JSON"))
    record = decode_dlq_record(producer.records[0][1])
    assert (record.event_id, record.account_id, record.kind) == ("wfm.retry.10s:0:9", None, None)
    assert (record.detail, record.first_attempt_at_ms) == ("not valid JSON", None)


async def test_a_dead_letter_without_the_value_keeps_its_size_and_sha256() -> None:
    w, producer, _ = writer()
    letter = DeadLetter("record_too_large", 1, "permanent_status: too large", omit_value=True)
    await w.dead_letter(event_work(), letter)
    data = orjson.loads(producer.records[0][1])
    assert data["event"]["value"] is None
    assert data["event"]["value_size"] == len(VALUE)
    assert data["event"]["value_sha256"] == hashlib.sha256(VALUE).hexdigest()
    record = decode_dlq_record(producer.records[0][1])
    assert record.source.value_omitted
    assert (record.source.topic, record.source.partition, record.source.offset) == (
        "wfm.agent", 2, 40,
    )  # fmt: skip
    assert record.event_id == "e-1"


HEADERS: list[tuple[str, bytes | None]] = [("traceparent", b"00-ab"), ("bin", b"\xff"), ("n", None)]


def headed_work() -> Work:
    work = event_work()
    work.source = SourceRecord("wfm.agent", 2, 40, b"1:7", VALUE, 1_700, headers=HEADERS)
    return work


async def test_retry_and_dead_letter_records_keep_the_input_headers() -> None:
    w, producer, _ = writer()
    await w.retry(
        headed_work(), retry_number=1, next_attempt=2, last_error="HTTP 503", last_status=503,
        retry_after=None,
    )  # fmt: skip
    await w.dead_letter(headed_work(), DeadLetter("permanent_status", 1, None, "HTTP 400", 400))
    await w.dead_letter(headed_work(), DeadLetter("record_too_large", 1, None, omit_value=True))
    retry, letter, too_large = (value for _topic, value, _key in producer.records)
    assert decode_retry_record(retry).source.headers == HEADERS
    assert decode_dlq_record(letter).source.headers == HEADERS
    assert decode_dlq_record(too_large).source.headers == HEADERS
    assert orjson.loads(letter)["event"]["headers"][1] == {
        "name": "bin", "value": "/w==", "value_encoding": "base64",
    }  # fmt: skip


async def test_records_of_input_without_headers_have_no_headers_field() -> None:
    w, producer, _ = writer()
    await w.dead_letter(event_work(), DeadLetter("permanent_status", 1, None, "HTTP 400", 400))
    assert "headers" not in orjson.loads(producer.records[0][1])["event"]
