"""Health records and notices (docs/contract.md §10): round trips, the notice's fields, and
decoding that rejects anything else with InvalidHealthRecordError only."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.health.exceptions import InvalidHealthRecordError
from stream_wfm.health.records import (
    BREAKER_STATES,
    EndpointReport,
    HealthRecord,
    Notice,
    decode_health_record,
    decode_notice,
    encode_health_record,
    encode_notice,
    health_key,
    iso_utc,
    notice_id_for,
    parse_iso_utc,
)
from tests.strategies import json_values

# Unix times from 1970 to 2100, to the second (what iso_utc writes).
seconds = st.integers(0, 4_102_444_800)
times = seconds.map(lambda s: iso_utc(float(s)))
counts = st.integers(0, 2**63 - 1)
texts = st.text(max_size=30)

reports = st.builds(
    EndpointReport,
    state=st.sampled_from(BREAKER_STATES),
    attempts_5m=counts,
    failures_5m=counts,
    deferred_5m=counts,
    last_success_at=st.none() | times,
    last_failure_at=st.none() | times,
    last_error=st.none() | texts,
    failing_since=st.none() | times,
)
records = st.builds(
    HealthRecord,
    account_id=texts,
    instance_id=texts,
    at=times,
    endpoints=st.dictionaries(st.sampled_from(["agent", "call"]) | texts, reports, max_size=3),
)
notices = st.builds(
    Notice,
    notice_id=st.uuids().map(str),
    account_id=texts,
    kind=st.sampled_from(["agent", "call"]),
    url=st.none() | texts,
    failing_since=times,
    last_error=st.none() | texts,
    at=times,
)


@given(records)
def test_a_health_record_round_trips(record: HealthRecord) -> None:
    assert decode_health_record(encode_health_record(record)) == record


@given(notices)
def test_a_notice_round_trips(notice: Notice) -> None:
    assert decode_notice(encode_notice(notice)) == notice


@given(seconds)
def test_times_round_trip_to_the_second(when: int) -> None:
    text = iso_utc(when + 0.75)
    assert text.endswith("Z")
    assert parse_iso_utc(text) == when


def test_a_notice_has_the_fields_the_contract_names() -> None:
    notice = Notice(
        notice_id=notice_id_for("acme", "agent", (0, 12)), account_id="acme", kind="agent",
        url="https://wfm.example.com/a", failing_since="2026-12-07T09:40:12Z",
        last_error="HTTP 503", at="2026-12-10T09:40:13Z",
    )  # fmt: skip
    data = orjson.loads(encode_notice(notice))
    assert list(data) == [
        "type", "notice_id", "account_id", "kind", "url", "failing_since", "last_error", "at",
    ]  # fmt: skip
    assert data["type"] == "integration.disabled"
    assert uuid.UUID(data["notice_id"]).version == 5


def test_the_contract_example_decodes() -> None:
    value = b"""{"account_id": "acme", "instance_id": "stream-wfm-0", "at": "2026-12-07T10:00:00Z",
     "endpoints": {"agent": {"state": "open", "attempts_5m": 40, "failures_5m": 40,
                             "deferred_5m": 310, "last_success_at": null,
                             "last_failure_at": "2026-12-07T09:59:58Z",
                             "last_error": "HTTP 503",
                             "failing_since": "2026-12-07T09:40:12Z"}}}"""
    record = decode_health_record(value)
    assert record.key == health_key("acme", "stream-wfm-0") == "acme/stream-wfm-0"
    agent = record.endpoints["agent"]
    assert (agent.state, agent.deferred_5m, agent.last_success_at) == ("open", 310, None)


# --- rejecting what is not a record ---------------------------------------------------------

VALID_REPORT = EndpointReport(
    state="open",
    attempts_5m=4,
    failures_5m=4,
    deferred_5m=31,
    last_success_at=None,
    last_failure_at="2026-12-07T09:59:58Z",
    last_error="HTTP 503",
    failing_since="2026-12-07T09:40:12Z",
)
VALID_RECORD: dict[str, Any] = orjson.loads(
    encode_health_record(
        HealthRecord("acme", "i-0", "2026-12-07T10:00:00Z", {"agent": VALID_REPORT})
    )
)
VALID_NOTICE: dict[str, Any] = orjson.loads(
    encode_notice(
        Notice(
            notice_id=str(uuid.uuid4()),
            account_id="acme",
            kind="agent",
            url=None,
            failing_since="2026-12-07T09:40:12Z",
            last_error=None,
            at="2026-12-10T09:40:12Z",
        )
    )
)


def with_report(**changes: Any) -> dict[str, Any]:
    report = {**VALID_RECORD["endpoints"]["agent"], **changes}
    return {**VALID_RECORD, "endpoints": {"agent": report}}


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"acme"',
        orjson.dumps({k: v for k, v in VALID_RECORD.items() if k != "at"}),
        orjson.dumps({**VALID_RECORD, "at": "2026-12-07T10:00:00"}),  # no zone
        orjson.dumps({**VALID_RECORD, "at": "yesterday"}),
        orjson.dumps({**VALID_RECORD, "account_id": 7}),
        orjson.dumps({**VALID_RECORD, "endpoints": None}),
        orjson.dumps({**VALID_RECORD, "endpoints": {"agent": None}}),
        orjson.dumps({**VALID_RECORD, "endpoints": {"agent": []}}),
        orjson.dumps(with_report(state="ajar")),
        orjson.dumps(with_report(state=["open"])),
        orjson.dumps(with_report(attempts_5m=-1)),
        orjson.dumps(with_report(failures_5m=1.5)),
        orjson.dumps(with_report(deferred_5m=True)),
        orjson.dumps(with_report(last_error=503)),
    ],
)
def test_a_malformed_health_record_is_rejected(value: bytes) -> None:
    with pytest.raises(InvalidHealthRecordError):
        decode_health_record(value)


@pytest.mark.parametrize(
    "value",
    [
        b"{}",
        orjson.dumps({**VALID_NOTICE, "type": "integration.enabled"}),
        orjson.dumps({**VALID_NOTICE, "failing_since": "soon"}),
        orjson.dumps({**VALID_NOTICE, "notice_id": None}),
        orjson.dumps({**VALID_NOTICE, "url": 1}),
        orjson.dumps({k: v for k, v in VALID_NOTICE.items() if k != "kind"}),
    ],
)
def test_a_malformed_notice_is_rejected(value: bytes) -> None:
    with pytest.raises(InvalidHealthRecordError):
        decode_notice(value)


def decodes_or_is_rejected(value: bytes) -> None:
    """Either decoder either decodes ``value`` or raises InvalidHealthRecordError, nothing
    else."""
    for decode in (decode_health_record, decode_notice):
        with contextlib.suppress(InvalidHealthRecordError):
            decode(value)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_are_rejected(value: bytes) -> None:
    decodes_or_is_rejected(value)


@given(json_values(max_children=4, max_leaves=20))
def test_arbitrary_json_decodes_or_is_rejected(data: Any) -> None:
    decodes_or_is_rejected(orjson.dumps(data))


@given(
    st.sampled_from(sorted(VALID_RECORD)),
    st.sampled_from(sorted(VALID_RECORD["endpoints"]["agent"])),
    json_values(max_children=3, max_leaves=6),
    st.booleans(),
)
def test_a_health_record_with_one_field_replaced_decodes_or_is_rejected(
    field: str, report_field: str, replacement: Any, in_report: bool
) -> None:
    data = with_report(**{report_field: replacement}) if in_report else {
        **VALID_RECORD, field: replacement
    }  # fmt: skip
    decodes_or_is_rejected(orjson.dumps(data))


@given(st.sampled_from(sorted(VALID_NOTICE)), json_values(max_children=3, max_leaves=6))
def test_a_notice_with_one_field_replaced_decodes_or_is_rejected(
    field: str, replacement: Any
) -> None:
    decodes_or_is_rejected(orjson.dumps({**VALID_NOTICE, field: replacement}))
