"""docs/contract.md §2: decoding input records into events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.events import (
    AGENT_LOGIN_FIELDS,
    AGENT_STATE_FIELDS,
    CALL_FIELDS,
    Event,
    EventKind,
    InvalidEventError,
    decode_event,
    parse_event,
    payload_fields,
)
from tests import strategies

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FALLBACK = "wfm.agent-events:3:1042"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


json_values = strategies.json_values(4, 15)


# --- the field lists ---------------------------------------------------------


def test_login_fields_are_the_spec_list_in_order() -> None:
    assert AGENT_LOGIN_FIELDS == (
        "external_agent_id", "duration", "agent_login_id", "account_id", "event_type",
        "agent_id", "date_time", "agent_phone", "username", "source_ip",
    )  # fmt: skip


def test_state_fields_are_the_spec_list_in_order() -> None:
    assert AGENT_STATE_FIELDS == (
        "agent_id", "prev_state", "prev_aux_state", "agent_phone", "source_ip",
        "external_agent_id", "duration", "agent_login_id", "account_id", "event_type",
        "event_aux_type", "date_time", "pending_disp", "username",
        "call_id", "call_source_id", "call_source_name", "dnis", "call_type",
    )  # fmt: skip


def test_call_fields_are_the_spec_list_in_order() -> None:
    assert CALL_FIELDS == (
        "recording_url", "agent_id", "queue_duration", "agent_disposition", "gate_name",
        "call_state", "call_duration", "call_id", "external_agent_id", "account_id",
        "event_type", "gate_id", "call_start", "dnis", "ani", "username",
    )  # fmt: skip


# --- valid events ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "event_type", "fields"),
    [
        ("agent_login.json", EventKind.AGENT, "LOGIN", AGENT_LOGIN_FIELDS),
        ("agent_logout.json", EventKind.AGENT, "LOGOUT", AGENT_LOGIN_FIELDS),
        ("agent_state_available.json", EventKind.AGENT, "AVAILABLE", AGENT_STATE_FIELDS),
        ("agent_state_custom.json", EventKind.AGENT, "ON BREAK", AGENT_STATE_FIELDS),
        ("agent_state_on_call.json", EventKind.AGENT, "ENGAGED", AGENT_STATE_FIELDS),
        ("end_call_inbound.json", EventKind.CALL, "ACD-CALL", CALL_FIELDS),
        ("end_call_outbound.json", EventKind.CALL, "VPD-CALL", CALL_FIELDS),
    ],
)
def test_fixture_decodes_with_its_kind_and_payload_fields(
    name: str, kind: EventKind, event_type: str, fields: tuple[str, ...]
) -> None:
    raw = fixture_bytes(name)
    event = decode_event(raw, kind, FALLBACK)
    assert event.kind is kind
    assert event.account_id == "15300002"
    assert event.event_type == event_type
    assert event.data == orjson.loads(raw)
    assert payload_fields(event) == fields
    # Every field of a fixture is a spec field of its kind (or the event_id).
    assert set(event.data) - {"event_id"} <= set(fields)


def test_agent_event_fields_and_order_key() -> None:
    event = decode_event(fixture_bytes("agent_login.json"), EventKind.AGENT, FALLBACK)
    assert event.agent_id == "1204571"
    assert event.call_id is None
    assert event.event_id == "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"
    assert event.order_key == "15300002:1204571"


def test_agent_state_on_call_keeps_agent_order_key_and_no_call_id() -> None:
    event = decode_event(fixture_bytes("agent_state_on_call.json"), EventKind.AGENT, FALLBACK)
    assert event.order_key == "15300002:1204571"
    assert event.call_id is None  # only call events carry call_id as an attribute


def test_answered_call_orders_with_its_agent() -> None:
    event = decode_event(fixture_bytes("end_call_inbound.json"), EventKind.CALL, FALLBACK)
    assert event.agent_id == "1204571"
    assert event.call_id == "640183527119"
    assert event.order_key == "15300002:1204571"


def test_unanswered_call_orders_by_call() -> None:
    event = decode_event(fixture_bytes("end_call_outbound.json"), EventKind.CALL, FALLBACK)
    assert event.agent_id is None
    assert event.order_key == "15300002:call:640183530482"
    assert event.event_id == FALLBACK


@pytest.mark.parametrize("agent_id", [None, "", 7, ["x"]])
def test_call_with_unusable_agent_id_orders_by_call(agent_id: Any) -> None:
    raw = dumps(
        {"account_id": "1", "event_type": "ACD-CALL", "call_id": "c9", "agent_id": agent_id}
    )
    event = decode_event(raw, EventKind.CALL, FALLBACK)
    assert event.agent_id is None
    assert event.order_key == "1:call:c9"
    assert event.data["agent_id"] == agent_id


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        ("evt-1", "evt-1"),
        ("a" * 200, "a" * 200),
        ("a" * 201, FALLBACK),
        ("", FALLBACK),
        (None, FALLBACK),
        (12345, FALLBACK),
        ("evt\r\nX-Injected: 1", FALLBACK),
        (" padded ", FALLBACK),
        ("with inner space", "with inner space"),
        ("évènement", FALLBACK),
    ],
)
def test_event_id_or_fallback(event_id: Any, expected: str) -> None:
    raw = dumps({"account_id": "1", "event_type": "LOGIN", "agent_id": "a", "event_id": event_id})
    assert decode_event(raw, EventKind.AGENT, FALLBACK).event_id == expected
    # The pipeline passes the record's coordinates; the same id results.
    coordinates = ("wfm.agent-events", 3, 1042)
    assert decode_event(raw, EventKind.AGENT, coordinates).event_id == expected


#: What a usable event id is, as a regular expression (docs/contract.md §2): the
#: decoder checks it with string methods instead, which must agree.
USABLE_EVENT_ID = re.compile(r"[!-~](?:[ -~]{0,198}[!-~])?")


@given(
    st.one_of(
        st.text(),
        st.text(st.characters(max_codepoint=0x7F), max_size=210),
        st.text(st.sampled_from(" a~\x7f\t"), max_size=8),
        st.integers(190, 210).map(lambda n: "e" * n),
    )
)
def test_an_event_id_is_used_exactly_when_the_regular_expression_matches_it(
    event_id: str,
) -> None:
    raw = dumps({"account_id": "1", "event_type": "LOGIN", "agent_id": "a", "event_id": event_id})
    expected = event_id if USABLE_EVENT_ID.fullmatch(event_id) else FALLBACK
    assert decode_event(raw, EventKind.AGENT, FALLBACK).event_id == expected


def test_missing_event_id_uses_fallback() -> None:
    raw = dumps({"account_id": "1", "event_type": "LOGIN", "agent_id": "a"})
    assert decode_event(raw, EventKind.AGENT, "t:0:5").event_id == "t:0:5"


def test_odd_types_in_other_fields_are_kept_as_they_are() -> None:
    data = {
        "account_id": "1",
        "event_type": "AVAILABLE",
        "agent_id": "a",
        "duration": {"nested": [1, 2.5, None]},
        "event_aux_type": 17,
        "username": "x" * 100_000,
        "date_time": True,
    }
    event = decode_event(dumps(data), EventKind.AGENT, FALLBACK)
    assert event.data == data


# --- invalid records ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (None, "empty value"),
        (b"", "empty value"),
        (b"NaN", "not valid JSON"),
        (
            b'{"account_id": "1", "event_type": "LOGIN", "agent_id": "a", "x": NaN}',
            "not valid JSON",
        ),
        (b'{"account_id": "\xff\xfe", "event_type": "LOGIN", "agent_id": "a"}', "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"LOGIN"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"42", "not a JSON object"),
        (b"{}", "missing required field account_id"),
        (b'{"account_id": "1", "agent_id": "a"}', "missing required field event_type"),
        (b'{"account_id": "1", "event_type": "LOGIN"}', "missing required field agent_id"),
        (b'{"account_id": "", "event_type": "LOGIN", "agent_id": "a"}', "field account_id is not"),
        (b'{"account_id": 15300002, "event_type": "LOGIN", "agent_id": "a"}', "account_id is not"),
        (b'{"account_id": null, "event_type": "LOGIN", "agent_id": "a"}', "account_id is not"),
        (b'{"account_id": "1", "event_type": ["LOGIN"], "agent_id": "a"}', "event_type is not"),
        (b'{"account_id": "1", "event_type": "LOGIN", "agent_id": 5}', "field agent_id is not"),
    ],
)
def test_invalid_agent_records(raw: bytes | None, detail: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(raw, EventKind.AGENT, FALLBACK)
    assert detail in info.value.detail
    assert info.value.retriable is False


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"account_id": "1", "event_type": "ACD-CALL"}, "missing required field call_id"),
        ({"account_id": "1", "event_type": "ACD-CALL", "call_id": ""}, "field call_id is not"),
        ({"account_id": "1", "event_type": "ACD-CALL", "call_id": 640183527119}, "call_id is not"),
    ],
)
def test_invalid_call_records(data: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(dumps(data), EventKind.CALL, FALLBACK)
    assert detail in info.value.detail


def test_call_event_does_not_need_agent_id_but_agent_event_does() -> None:
    raw = dumps({"account_id": "1", "event_type": "ACD-CALL", "call_id": "c"})
    decode_event(raw, EventKind.CALL, FALLBACK)
    with pytest.raises(InvalidEventError):
        decode_event(raw, EventKind.AGENT, FALLBACK)


def test_invalid_detail_does_not_echo_the_record() -> None:
    raw = b'{"account_id": "SECRET-MARKER", "event_type": NaN}'
    with pytest.raises(InvalidEventError) as info:
        decode_event(raw, EventKind.AGENT, FALLBACK)
    assert "SECRET-MARKER" not in str(info.value)
    assert "NaN" not in str(info.value)


# --- payload_fields ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "event_type", "fields"),
    [
        (EventKind.AGENT, "LOGIN", AGENT_LOGIN_FIELDS),
        (EventKind.AGENT, "LOGOUT", AGENT_LOGIN_FIELDS),
        (EventKind.AGENT, "AVAILABLE", AGENT_STATE_FIELDS),
        (EventKind.AGENT, "Coaching", AGENT_STATE_FIELDS),
        (EventKind.AGENT, "login", AGENT_STATE_FIELDS),  # LOGIN/LOGOUT match exactly
        (EventKind.CALL, "ACD-CALL", CALL_FIELDS),
        (EventKind.CALL, "LOGIN", CALL_FIELDS),
    ],
)
def test_payload_fields(kind: EventKind, event_type: str, fields: tuple[str, ...]) -> None:
    event = Event(kind, "1", event_type, "a", "c", "e", {}, "1:a")
    assert payload_fields(event) == fields


# --- properties --------------------------------------------------------------


def _decode_or_invalid(raw: bytes, kind: EventKind) -> Event | None:
    try:
        return decode_event(raw, kind, FALLBACK)
    except InvalidEventError:
        return None


@given(st.binary(max_size=200), st.sampled_from(list(EventKind)))
def test_arbitrary_bytes_decode_or_raise_invalid_event(raw: bytes, kind: EventKind) -> None:
    event = _decode_or_invalid(raw, kind)
    assert event is None or isinstance(event.data, dict)


@given(json_values, st.sampled_from(list(EventKind)))
def test_arbitrary_json_decodes_or_raises_invalid_event(value: Any, kind: EventKind) -> None:
    _decode_or_invalid(dumps(value), kind)


@given(
    st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.sampled_from(list(EventKind)),
)
def test_records_with_required_fields_always_decode(
    extra: dict[str, Any], account_id: str, event_type: str, some_id: str, kind: EventKind
) -> None:
    data = {**extra, "account_id": account_id, "event_type": event_type}
    data["agent_id" if kind is EventKind.AGENT else "call_id"] = some_id
    event = decode_event(dumps(data), kind, FALLBACK)
    assert event.data == data
    assert event.account_id == account_id
    assert event.order_key.startswith(f"{account_id}:")


# --- Schema Registry framing ---------------------------------------------------------


def framed(document: bytes, schema_id: int = 100_042) -> bytes:
    """``document`` as a Confluent Schema Registry JSON serializer frames it: magic byte 0,
    the schema id as 4 bytes big-endian, then the document."""
    return b"\x00" + schema_id.to_bytes(4, "big") + document


LOGIN_EVENT = {"account_id": "1", "agent_id": "7", "event_type": "LOGIN", "event_id": "e-9"}


@pytest.mark.parametrize("kind", list(EventKind))
def test_a_framed_value_decodes_as_its_json_document(kind: EventKind) -> None:
    data = {**LOGIN_EVENT, "call_id": "c-1"}
    plain = decode_event(dumps(data), kind, FALLBACK)
    event = decode_event(framed(dumps(data)), kind, FALLBACK)
    assert event == plain
    assert event.data == data
    assert parse_event(framed(dumps(data)), kind) == data


@pytest.mark.parametrize("schema_id", [0, 1, 0x7F7F7F7F, 0xFFFFFFFF, 0x7B2D0A20])
def test_the_schema_id_is_ignored(schema_id: int) -> None:
    # Any 4 bytes, including ones that read as JSON text ('{', '-', newline, space).
    event = decode_event(framed(dumps(LOGIN_EVENT), schema_id), EventKind.AGENT, FALLBACK)
    assert event.data == LOGIN_EVENT


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (b"{", "not valid JSON (error at position 1)"),  # positions within the document
        (b'{"account_id": "1", "event_type": NaN}', "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"account_id": "1", "event_type": "LOGIN"}', "missing required field agent_id"),
        (b"", "empty value after the schema registry framing"),
        (b"\x00\x00\x00\x00\x00{}", "not valid JSON"),  # framed twice: not read twice
    ],
)
def test_a_framed_invalid_document_is_an_invalid_event(document: bytes, detail: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(framed(document), EventKind.AGENT, FALLBACK)
    assert detail in info.value.detail


@pytest.mark.parametrize("raw", [b"\x00", b"\x00\x00", b"\x00\x00\x01\x02"])
def test_a_value_led_by_byte_0_shorter_than_the_framing_is_an_invalid_event(raw: bytes) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(raw, EventKind.AGENT, FALLBACK)
    assert info.value.detail == (
        "starts with byte 0 (schema registry framing) but is shorter than 5 bytes"
    )


@given(st.binary(max_size=200), st.sampled_from(list(EventKind)))
def test_arbitrary_framed_bytes_decode_or_raise_invalid_event(raw: bytes, kind: EventKind) -> None:
    _decode_or_invalid(b"\x00" + raw, kind)
