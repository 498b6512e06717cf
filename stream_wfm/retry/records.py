"""Values of retry-topic and dead-letter-topic records (docs/contract.md §6), as JSON.

Retry record (``schema`` ``stream-wfm.retry/1``)::

    {"schema": "stream-wfm.retry/1",
     "event": {"topic", "partition", "offset", "timestamp_ms",
               "key", "key_encoding", "value", "value_encoding",
               "headers": [{"name", "value", "value_encoding"}, ...]},
     "account_id", "event_id", "kind", "attempt", "due_at_ms",
     "last_error", "last_status", "first_attempt_at_ms"}

``attempt`` is the number of the next attempt (2 for the first retry; 1 only
for a dead letter redriven by ``stream-wfm dlq redrive``, which starts a fresh
retry budget).
``key`` and ``value`` are the source record's bytes: as text when they are
valid UTF-8 (``*_encoding`` ``"utf-8"``), else base64 (``"base64"``); a null
key or value is ``null`` (its encoding then reads ``"utf-8"`` and means
nothing). ``headers`` are the source record's Kafka headers, in order, each
value by the same rule; the field is left out when the record had none, and a
record without it (written before it existed) reads as having none.

DLQ record (``schema`` ``stream-wfm.dlq/1``): the same fields without
``attempt`` and ``due_at_ms``, plus ``attempts`` (attempts made; 0 for an
invalid event), ``reason``, ``detail`` (or null) and ``dead_lettered_at_ms``;
``kind`` is null for a retry record that could not be read (reason
``invalid_retry_record``): its kind is not known;
``first_attempt_at_ms`` is null when no attempt was made.

Neither record ever holds integration header values: nothing here takes a
config (the headers kept are the input record's own).
``schemas/retry-record.schema.json`` and ``schemas/dlq-record.schema.json``
describe both formats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from stream_wfm.errors import StreamWfmError
from stream_wfm.events import EventKind

__all__ = [
    "DLQ_SCHEMA",
    "RETRY_SCHEMA",
    "DlqRecord",
    "Headers",
    "InvalidDlqRecordError",
    "InvalidRecordError",
    "InvalidRetryRecordError",
    "RetryRecord",
    "SourceRecord",
    "decode_dlq_record",
    "decode_retry_record",
    "encode_dlq_record",
    "encode_retry_record",
]

RETRY_SCHEMA: Final = "stream-wfm.retry/1"
DLQ_SCHEMA: Final = "stream-wfm.dlq/1"
_UTF8: Final = "utf-8"
_BASE64: Final = "base64"

#: A Kafka record's headers, as confluent-kafka gives them: (name, value or None), in order.
Headers = list[tuple[str, bytes | None]]


class InvalidRecordError(StreamWfmError):
    """A retry or DLQ record value cannot be decoded; ``detail`` says why."""

    retriable = False
    what = "record"

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid {self.what}: {detail}")
        self.detail = detail


class InvalidRetryRecordError(InvalidRecordError):
    what = "retry record"


class InvalidDlqRecordError(InvalidRecordError):
    what = "DLQ record"


@dataclass(slots=True)
class SourceRecord:
    """The input record an event came from, as it was.

    In a dead letter whose record would be too large to write (reason
    ``record_too_large``), the value is omitted: ``value`` is None and
    ``value_size`` and ``value_sha256`` (hex) describe the value that was.

    ``headers`` are the record's Kafka headers as the consumer gives them (name,
    value or None), in order; None (or empty) when it had none.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    value_size: int | None = None
    value_sha256: str | None = None
    headers: Headers | None = None

    @property
    def value_omitted(self) -> bool:
        return self.value_size is not None

    def without_value(self) -> SourceRecord:
        """This record with its value replaced by the value's size and SHA-256 (its key,
        timestamp and headers kept)."""
        value = self.value or b""
        return SourceRecord(
            self.topic, self.partition, self.offset, self.key, None, self.timestamp_ms,
            len(value), hashlib.sha256(value).hexdigest(), self.headers,
        )  # fmt: skip


@dataclass(slots=True)
class RetryRecord:
    """A pending retry; ``attempt`` is the number of the next attempt (>= 2; 1 for a redrive)."""

    source: SourceRecord
    account_id: str | None
    event_id: str
    kind: EventKind
    attempt: int
    due_at_ms: int
    last_error: str | None
    last_status: int | None
    first_attempt_at_ms: int


@dataclass(slots=True)
class DlqRecord:
    """A dead letter; ``attempts`` is the number of attempts made (0 for an invalid event)."""

    source: SourceRecord
    account_id: str | None
    event_id: str
    kind: EventKind | None  # None: the dead letter is a retry record that was not readable
    attempts: int
    reason: str
    detail: str | None
    last_error: str | None
    last_status: int | None
    first_attempt_at_ms: int | None
    dead_lettered_at_ms: int


# --- encoding ----------------------------------------------------------------


def _bytes_out(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, _UTF8
    try:
        return data.decode("utf-8"), _UTF8
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), _BASE64


def _source_out(source: SourceRecord) -> dict[str, Any]:
    key, key_encoding = _bytes_out(source.key)
    value, value_encoding = _bytes_out(source.value)
    out: dict[str, Any] = {
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "timestamp_ms": source.timestamp_ms,
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
    }
    if source.value_size is not None:
        out["value_size"] = source.value_size
        out["value_sha256"] = source.value_sha256
    if source.headers:
        out["headers"] = [_header_out(name, data) for name, data in source.headers]
    return out


def _header_out(name: str, data: bytes | None) -> dict[str, Any]:
    value, value_encoding = _bytes_out(data)
    return {"name": name, "value": value, "value_encoding": value_encoding}


def encode_retry_record(record: RetryRecord) -> bytes:
    """The retry topic record value of ``record``."""
    return orjson.dumps(
        {
            "schema": RETRY_SCHEMA,
            "event": _source_out(record.source),
            "account_id": record.account_id,
            "event_id": record.event_id,
            "kind": record.kind.value,
            "attempt": record.attempt,
            "due_at_ms": record.due_at_ms,
            "last_error": record.last_error,
            "last_status": record.last_status,
            "first_attempt_at_ms": record.first_attempt_at_ms,
        }
    )


def encode_dlq_record(record: DlqRecord) -> bytes:
    """The DLQ topic record value of ``record``."""
    return orjson.dumps(
        {
            "schema": DLQ_SCHEMA,
            "event": _source_out(record.source),
            "account_id": record.account_id,
            "event_id": record.event_id,
            "kind": None if record.kind is None else record.kind.value,
            "attempts": record.attempts,
            "reason": record.reason,
            "detail": record.detail,
            "last_error": record.last_error,
            "last_status": record.last_status,
            "first_attempt_at_ms": record.first_attempt_at_ms,
            "dead_lettered_at_ms": record.dead_lettered_at_ms,
        }
    )


# --- decoding ----------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object; problems raise ``error``."""

    __slots__ = ("data", "error", "where")

    def __init__(self, data: Any, error: type[InvalidRecordError], where: str) -> None:
        if type(data) is not dict:
            raise error(f"{where} is not a JSON object")
        self.data: dict[str, Any] = data
        self.error = error
        self.where = where

    def _fail(self, name: str, expected: str) -> InvalidRecordError:
        if name not in self.data:
            return self.error(f"{self.where}.{name} is missing")
        return self.error(f"{self.where}.{name} is not {expected}")

    def integer(self, name: str, minimum: int = 0) -> int:
        value = self.data.get(name)
        if type(value) is not int or value < minimum:
            raise self._fail(name, f"an integer >= {minimum}")
        return value

    def opt_integer(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None and name in self.data:
            return None
        if type(value) is not int:
            raise self._fail(name, "an integer or null")
        return value

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if type(value) is not str:
            raise self._fail(name, "a string")
        return value

    def opt_text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None and name in self.data:
            return None
        if type(value) is not str:
            raise self._fail(name, "a string or null")
        return value

    def kind(self) -> EventKind:
        value = self.data.get("kind")
        if value not in ("agent", "call"):
            raise self._fail("kind", '"agent" or "call"')
        return EventKind(value)

    def opt_kind(self) -> EventKind | None:
        if self.data.get("kind", 0) is None:
            return None
        return self.kind()

    def raw_bytes(self, name: str) -> bytes | None:
        text = self.opt_text(name)
        encoding = self.data.get(f"{name}_encoding")
        if encoding not in (_UTF8, _BASE64):
            raise self._fail(f"{name}_encoding", '"utf-8" or "base64"')
        if text is None:
            return None
        if encoding == _UTF8:
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.error(f"{self.where}.{name} is not valid base64") from None


def _open(value: bytes, schema: str, error: type[InvalidRecordError]) -> _Reader:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise error("not valid JSON") from None
    record = _Reader(data, error, "record")
    if record.data.get("schema") != schema:
        raise error(f'record.schema is not "{schema}"')
    return record


def _headers_in(event: _Reader) -> Headers | None:
    """``event.headers``: None when absent or empty (records written before it existed)."""
    items = event.data.get("headers")
    if items is None and "headers" not in event.data:
        return None
    if type(items) is not list:
        raise event.error(f"{event.where}.headers is not a list")
    headers: Headers = []
    for index, item in enumerate(items):
        header = _Reader(item, event.error, f"{event.where}.headers[{index}]")
        headers.append((header.text("name"), header.raw_bytes("value")))
    return headers or None


def _source_in(record: _Reader) -> SourceRecord:
    event = _Reader(record.data.get("event"), record.error, "record.event")
    return SourceRecord(
        topic=event.text("topic"),
        partition=event.integer("partition"),
        offset=event.integer("offset"),
        key=event.raw_bytes("key"),
        value=event.raw_bytes("value"),
        timestamp_ms=event.opt_integer("timestamp_ms"),
        value_size=event.opt_integer("value_size") if "value_size" in event.data else None,
        value_sha256=event.opt_text("value_sha256") if "value_sha256" in event.data else None,
        headers=_headers_in(event),
    )


def decode_retry_record(value: bytes) -> RetryRecord:
    """Decode a retry topic record value; raises :class:`InvalidRetryRecordError`."""
    record = _open(value, RETRY_SCHEMA, InvalidRetryRecordError)
    return RetryRecord(
        source=_source_in(record),
        account_id=record.opt_text("account_id"),
        event_id=record.text("event_id"),
        kind=record.kind(),
        attempt=record.integer("attempt", minimum=1),
        due_at_ms=record.integer("due_at_ms"),
        last_error=record.opt_text("last_error"),
        last_status=record.opt_integer("last_status"),
        first_attempt_at_ms=record.integer("first_attempt_at_ms"),
    )


def decode_dlq_record(value: bytes) -> DlqRecord:
    """Decode a DLQ topic record value; raises :class:`InvalidDlqRecordError`."""
    record = _open(value, DLQ_SCHEMA, InvalidDlqRecordError)
    return DlqRecord(
        source=_source_in(record),
        account_id=record.opt_text("account_id"),
        event_id=record.text("event_id"),
        kind=record.opt_kind(),
        attempts=record.integer("attempts"),
        reason=record.text("reason"),
        detail=record.opt_text("detail"),
        last_error=record.opt_text("last_error"),
        last_status=record.opt_integer("last_status"),
        first_attempt_at_ms=record.opt_integer("first_attempt_at_ms"),
        dead_lettered_at_ms=record.integer("dead_lettered_at_ms"),
    )
