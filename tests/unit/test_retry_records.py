"""docs/contract.md §6: retry and dead-letter record values."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import validate_config
from stream_wfm.retry.dead_letters import DlqEntry
from stream_wfm.retry.records import (
    DlqRecord,
    InvalidDlqRecordError,
    InvalidRecordError,
    InvalidRetryRecordError,
    RetryRecord,
    SourceRecord,
    decode_dlq_record,
    decode_retry_record,
    encode_dlq_record,
    encode_retry_record,
)
from stream_wfm.retry.redrive import redrive_record

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RETRY_VALIDATOR = Draft202012Validator(
    json.loads((SCHEMAS / "retry-record.schema.json").read_text())
)
DLQ_VALIDATOR = Draft202012Validator(json.loads((SCHEMAS / "dlq-record.schema.json").read_text()))
LOGIN = (FIXTURES / "agent_login.json").read_bytes()


def source(key: bytes | None = b"15300002:1204571", value: bytes | None = LOGIN) -> SourceRecord:
    return SourceRecord("wfm.agent-events", 3, 1042, key, value, 1_764_061_200_000)


def retry_record(src: SourceRecord | None = None, **changes: Any) -> RetryRecord:
    fields: dict[str, Any] = {
        "source": src or source(),
        "account_id": "15300002",
        "event_id": "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11",
        "kind": EventKind.AGENT,
        "attempt": 2,
        "due_at_ms": 1_764_061_210_000,
        "last_error": "HTTP 503",
        "last_status": 503,
        "first_attempt_at_ms": 1_764_061_200_100,
    }
    return RetryRecord(**{**fields, **changes})


def dlq_record(src: SourceRecord | None = None, **changes: Any) -> DlqRecord:
    fields: dict[str, Any] = {
        "source": src or source(),
        "account_id": "15300002",
        "event_id": "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11",
        "kind": EventKind.AGENT,
        "attempts": 4,
        "reason": "retries_exhausted",
        "detail": None,
        "last_error": "timeout after 10s",
        "last_status": None,
        "first_attempt_at_ms": 1_764_061_200_100,
        "dead_lettered_at_ms": 1_764_065_000_000,
    }
    return DlqRecord(**{**fields, **changes})


SOURCES = [
    source(),
    source(key=None),
    source(value=None),
    source(key=None, value=None),
    source(key=b"\xff\xfe\x00", value=b"\x80not utf-8 \xc3"),
    source(key=b"", value=b""),
    SourceRecord("wfm.call-events", 0, 0, b"k", b"{}", None),
]


@pytest.mark.parametrize("src", SOURCES)
def test_retry_record_round_trips(src: SourceRecord) -> None:
    record = retry_record(src)
    value = encode_retry_record(record)
    assert decode_retry_record(value) == record
    RETRY_VALIDATOR.validate(orjson.loads(value))


@pytest.mark.parametrize("src", SOURCES)
def test_dlq_record_round_trips(src: SourceRecord) -> None:
    record = dlq_record(src)
    value = encode_dlq_record(record)
    assert decode_dlq_record(value) == record
    DLQ_VALIDATOR.validate(orjson.loads(value))


def test_invalid_event_dlq_record() -> None:
    record = dlq_record(
        source(value=b"\xff{"),
        account_id=None,
        event_id="wfm.agent-events:3:1042",
        attempts=0,
        reason="invalid_event",
        detail="not valid JSON (error at position 0)",
        last_error=None,
        first_attempt_at_ms=None,
    )
    value = encode_dlq_record(record)
    assert decode_dlq_record(value) == record
    DLQ_VALIDATOR.validate(orjson.loads(value))


def test_unreadable_retry_record_dlq_record_has_no_kind() -> None:
    record = dlq_record(
        SourceRecord("wfm.webhooks.retry.10s", 0, 7, None, b"garbage", None),
        account_id=None,
        event_id="wfm.webhooks.retry.10s:0:7",
        kind=None,
        attempts=0,
        reason="invalid_retry_record",
        detail="invalid retry record: not valid JSON",
        last_error=None,
        first_attempt_at_ms=None,
    )
    value = encode_dlq_record(record)
    assert orjson.loads(value)["kind"] is None
    assert decode_dlq_record(value) == record
    DLQ_VALIDATOR.validate(orjson.loads(value))


def test_a_dlq_record_without_its_source_value_round_trips_and_fits_the_schema() -> None:
    src = source(value=b"\xff" * 1000).without_value()
    assert (src.value, src.value_size) == (None, 1000)
    record = dlq_record(src, reason="record_too_large")
    value = encode_dlq_record(record)
    assert decode_dlq_record(value) == record
    DLQ_VALIDATOR.validate(orjson.loads(value))
    # A value that was present is written as before: no size or hash keys.
    assert "value_size" not in orjson.loads(encode_dlq_record(dlq_record(source())))["event"]


def test_retry_record_layout() -> None:
    data = orjson.loads(encode_retry_record(retry_record()))
    assert data == {
        "schema": "stream-wfm.retry/1",
        "event": {
            "topic": "wfm.agent-events",
            "partition": 3,
            "offset": 1042,
            "timestamp_ms": 1_764_061_200_000,
            "key": "15300002:1204571",
            "key_encoding": "utf-8",
            "value": LOGIN.decode(),
            "value_encoding": "utf-8",
        },
        "account_id": "15300002",
        "event_id": "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11",
        "kind": "agent",
        "attempt": 2,
        "due_at_ms": 1_764_061_210_000,
        "last_error": "HTTP 503",
        "last_status": 503,
        "first_attempt_at_ms": 1_764_061_200_100,
    }


def test_non_utf8_bytes_are_base64() -> None:
    data = orjson.loads(encode_retry_record(retry_record(source(key=b"\xff", value=b"\x80\x81"))))
    assert data["event"]["key"] == base64.b64encode(b"\xff").decode()
    assert data["event"]["key_encoding"] == "base64"
    assert data["event"]["value"] == base64.b64encode(b"\x80\x81").decode()
    assert data["event"]["value_encoding"] == "base64"


def test_dlq_record_layout_has_reason_and_no_due_time() -> None:
    data = orjson.loads(encode_dlq_record(dlq_record()))
    assert data["schema"] == "stream-wfm.dlq/1"
    assert data["reason"] == "retries_exhausted"
    assert data["attempts"] == 4
    assert data["dead_lettered_at_ms"] == 1_764_065_000_000
    assert "attempt" not in data
    assert "due_at_ms" not in data


def test_records_never_hold_header_values() -> None:
    secret = "Bearer never-in-a-record-4b1d"
    cfg = validate_config({"account_id": "15300002", "headers": {"Authorization": secret}})
    event = decode_event(LOGIN, EventKind.AGENT, "t:0:1")
    record = retry_record(account_id=cfg.account_id, event_id=event.event_id)
    assert secret.encode() not in encode_retry_record(record)
    assert secret.encode() not in encode_dlq_record(dlq_record(account_id=cfg.account_id))


@given(
    st.binary(max_size=50) | st.none(),
    st.binary(max_size=200) | st.none(),
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=2, max_value=11),
    st.sampled_from(list(EventKind)),
    st.text(max_size=50) | st.none(),
)
def test_retry_round_trip_property(
    key: bytes | None,
    value: bytes | None,
    partition: int,
    offset: int,
    attempt: int,
    kind: EventKind,
    last_error: str | None,
) -> None:
    src = SourceRecord("t", partition, offset, key, value, None)
    record = retry_record(src, attempt=attempt, kind=kind, last_error=last_error)
    assert decode_retry_record(encode_retry_record(record)) == record


# --- garbage -------------------------------------------------------------------


def _retry_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(encode_retry_record(retry_record()))
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "record is not a JSON object"),
        (orjson.dumps(_retry_dict(schema="stream-wfm.dlq/1")), "record.schema"),
        (orjson.dumps(_retry_dict(schema=None)), "record.schema"),
        (orjson.dumps(_retry_dict(event=[])), "record.event is not a JSON object"),
        (orjson.dumps(_retry_dict(attempt=0)), "record.attempt is not an integer >= 1"),
        (orjson.dumps(_retry_dict(attempt="2")), "record.attempt is not"),
        (orjson.dumps(_retry_dict(attempt=True)), "record.attempt is not"),
        (orjson.dumps(_retry_dict(due_at_ms=1.5)), "record.due_at_ms is not"),
        (orjson.dumps(_retry_dict(kind="sms")), "record.kind is not"),
        (orjson.dumps(_retry_dict(event_id=None)), "record.event_id is not a string"),
        (orjson.dumps(_retry_dict(last_status="503")), "record.last_status is not"),
        (orjson.dumps({k: v for k, v in _retry_dict().items() if k != "account_id"}),
         "record.account_id is missing"),
        (orjson.dumps(_retry_dict(event={**_retry_dict()["event"], "offset": -1})),
         "record.event.offset is not"),
        (orjson.dumps(_retry_dict(event={**_retry_dict()["event"], "value_encoding": "hex"})),
         "record.event.value_encoding is not"),
        (orjson.dumps(_retry_dict(event={**_retry_dict()["event"], "value_encoding": "base64",
                                         "value": "***"})),
         "record.event.value is not valid base64"),
    ],
)  # fmt: skip
def test_invalid_retry_records(value: bytes, detail: str) -> None:
    with pytest.raises(InvalidRetryRecordError) as info:
        decode_retry_record(value)
    assert detail in info.value.detail
    assert info.value.retriable is False


def test_a_retry_record_is_not_a_dlq_record() -> None:
    with pytest.raises(InvalidDlqRecordError, match="schema"):
        decode_dlq_record(encode_retry_record(retry_record()))
    with pytest.raises(InvalidRetryRecordError, match="schema"):
        decode_retry_record(encode_dlq_record(dlq_record()))


@given(st.binary(max_size=300))
def test_garbage_raises_only_invalid_record_errors(value: bytes) -> None:
    for decode in (decode_retry_record, decode_dlq_record):
        with contextlib.suppress(InvalidRecordError):
            decode(value)


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
mutations = st.dictionaries(
    st.sampled_from(["schema", "event", "account_id", "event_id", "kind", "attempt", "due_at_ms",
                     "last_error", "last_status", "first_attempt_at_ms"]),
    json_scalars | st.dictionaries(st.sampled_from(["topic", "partition", "offset", "key",
                                                    "key_encoding", "value", "value_encoding",
                                                    "headers"]),
                                   json_scalars),
)  # fmt: skip


@given(mutations)
def test_mutated_records_decode_or_raise_invalid(changes: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidRetryRecordError):
        decode_retry_record(orjson.dumps(_retry_dict(**changes)))


# --- the input record's headers ---------------------------------------------------------

HEADERS: list[tuple[str, bytes | None]] = [
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("content-type", b"application/json"),
    ("binary", b"\xff\x00\x80"),
    ("empty", b""),
    ("null", None),
    ("traceparent", b"repeated names are kept, in order"),
]


def headed(
    headers: list[tuple[str, bytes | None]] | None = HEADERS, **changes: Any
) -> SourceRecord:
    src = source(**changes)
    src.headers = headers
    return src


@pytest.mark.parametrize(
    ("headers", "value"), [(HEADERS, LOGIN), ([("a", b"1")], LOGIN), (HEADERS, b"\x80\xff")]
)
def test_records_with_headers_round_trip_and_fit_the_schemas(
    headers: list[tuple[str, bytes | None]], value: bytes
) -> None:
    src = headed(headers, value=value)
    retry = encode_retry_record(retry_record(src))
    assert decode_retry_record(retry) == retry_record(src)
    RETRY_VALIDATOR.validate(orjson.loads(retry))
    dlq = encode_dlq_record(dlq_record(src))
    assert decode_dlq_record(dlq) == dlq_record(src)
    DLQ_VALIDATOR.validate(orjson.loads(dlq))


def test_headers_are_written_with_the_key_and_value_encoding_rule() -> None:
    data = orjson.loads(encode_retry_record(retry_record(headed())))
    assert data["event"]["headers"] == [
        {"name": "traceparent", "value": HEADERS[0][1].decode(),  # type: ignore[union-attr]
         "value_encoding": "utf-8"},
        {"name": "content-type", "value": "application/json", "value_encoding": "utf-8"},
        {"name": "binary", "value": base64.b64encode(b"\xff\x00\x80").decode(),
         "value_encoding": "base64"},
        {"name": "empty", "value": "", "value_encoding": "utf-8"},
        {"name": "null", "value": None, "value_encoding": "utf-8"},
        {"name": "traceparent", "value": "repeated names are kept, in order",
         "value_encoding": "utf-8"},
    ]  # fmt: skip


@pytest.mark.parametrize("headers", [None, []])
def test_a_record_without_headers_has_no_headers_field(
    headers: list[tuple[str, bytes | None]] | None,
) -> None:
    for value in (encode_retry_record(retry_record(headed(headers))),
                  encode_dlq_record(dlq_record(headed(headers)))):  # fmt: skip
        assert "headers" not in orjson.loads(value)["event"]


def test_an_empty_headers_list_reads_as_no_headers() -> None:
    data = _retry_dict()
    data["event"]["headers"] = []
    assert decode_retry_record(orjson.dumps(data)).source.headers is None
    RETRY_VALIDATOR.validate(data)


def test_records_written_before_headers_were_kept_still_decode() -> None:
    old = _retry_dict()
    assert "headers" not in old["event"]
    assert decode_retry_record(orjson.dumps(old)).source == source()
    assert source().headers is None


def test_a_dead_letter_without_its_value_keeps_the_headers() -> None:
    src = headed().without_value()
    assert (src.value, src.headers) == (None, HEADERS)
    value = encode_dlq_record(dlq_record(src, reason="record_too_large"))
    assert decode_dlq_record(value).source.headers == HEADERS
    DLQ_VALIDATOR.validate(orjson.loads(value))


def _with_headers(headers: Any) -> bytes:
    data = _retry_dict()
    data["event"]["headers"] = headers
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"a": "1"}, "record.event.headers is not a list"),
        ("a", "record.event.headers is not a list"),
        ([["a", "1"]], "record.event.headers[0] is not a JSON object"),
        ([{"value": "1", "value_encoding": "utf-8"}], "record.event.headers[0].name is missing"),
        ([{"name": 1, "value": "1", "value_encoding": "utf-8"}],
         "record.event.headers[0].name is not a string"),
        ([{"name": "a", "value_encoding": "utf-8"}], "record.event.headers[0].value is missing"),
        ([{"name": "a", "value": 1, "value_encoding": "utf-8"}],
         "record.event.headers[0].value is not a string or null"),
        ([{"name": "a", "value": "1", "value_encoding": "utf-8"},
          {"name": "b", "value": "1", "value_encoding": "hex"}],
         "record.event.headers[1].value_encoding is not"),
        ([{"name": "a", "value": "***", "value_encoding": "base64"}],
         "record.event.headers[0].value is not valid base64"),
    ],
)  # fmt: skip
def test_invalid_headers_make_an_invalid_retry_record(headers: Any, detail: str) -> None:
    with pytest.raises(InvalidRetryRecordError) as info:
        decode_retry_record(_with_headers(headers))
    assert detail in info.value.detail
    if "base64" not in detail:  # the schema does not check base64 text
        assert not RETRY_VALIDATOR.is_valid(orjson.loads(_with_headers(headers)))


@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.binary(max_size=40) | st.none()), min_size=1, max_size=5
    )
)
def test_headers_round_trip_property(headers: list[tuple[str, bytes | None]]) -> None:
    record = retry_record(headed(headers))
    assert decode_retry_record(encode_retry_record(record)).source.headers == headers
    letter = dlq_record(headed(headers))
    assert decode_dlq_record(encode_dlq_record(letter)).source.headers == headers


def test_a_redriven_dead_letter_keeps_the_input_headers() -> None:
    entry = DlqEntry("wfm.webhooks.dlq", 0, 5, None, dlq_record(headed()))
    retry = decode_retry_record(encode_retry_record(redrive_record(entry, 1_800_000_000_000)))
    assert retry.source.headers == HEADERS
    assert retry.source == headed()
