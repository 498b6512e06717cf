"""docs/contract.md §5/§6: outcome classification and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.delivery.exceptions import (
    ConnectionFailedError,
    DeliveryTimeoutError,
    DestinationRefusedError,
    IncompleteResponseError,
    NoResponseError,
    ProtocolError,
    UnencodableRequestError,
)
from stream_wfm.delivery.outcome import (
    MAX_RETRY_AFTER_SECONDS,
    Outcome,
    OutcomeKind,
    classify_status,
    connection_error_outcome,
    outcome_for_error,
    parse_retry_after,
)
from stream_wfm.errors import StreamWfmError
from stream_wfm.ops.metrics import OUTCOMES, STATUS_CLASSES

NOW = 1_764_061_200.0  # 2025-11-25 09:00:00 UTC


@pytest.mark.parametrize("status", [200, 201, 202, 204, 226, 299])
def test_2xx_is_delivered(status: int) -> None:
    outcome = classify_status(status)
    assert outcome == Outcome(OutcomeKind.DELIVERED, status, None, "2xx")
    assert not outcome.retriable


@pytest.mark.parametrize(
    ("status", "status_class"),
    [
        (408, "4xx"), (425, "4xx"), (429, "4xx"),
        (500, "5xx"), (502, "5xx"), (503, "5xx"), (504, "5xx"), (599, "5xx"),
    ],
)  # fmt: skip
def test_retryable_statuses(status: int, status_class: str) -> None:
    outcome = classify_status(status)
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.retriable
    assert outcome.status == status
    assert outcome.status_class == status_class
    assert outcome.error == f"HTTP {status}"
    assert outcome.reason is None
    assert outcome.retry_after is None


@pytest.mark.parametrize(
    ("status", "status_class"),
    [
        (100, "1xx"), (101, "1xx"), (103, "1xx"),
        (300, "3xx"), (301, "3xx"), (302, "3xx"), (304, "3xx"), (307, "3xx"), (308, "3xx"),
        (400, "4xx"), (401, "4xx"), (403, "4xx"), (404, "4xx"), (405, "4xx"), (409, "4xx"),
        (410, "4xx"), (413, "4xx"), (415, "4xx"), (422, "4xx"), (426, "4xx"), (451, "4xx"),
        (499, "4xx"),
        (600, "5xx"), (999, "5xx"), (99, "1xx"),
    ],
)  # fmt: skip
def test_permanent_statuses(status: int, status_class: str) -> None:
    outcome = classify_status(status, "120", NOW)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert not outcome.retriable
    assert outcome.status_class == status_class
    assert outcome.reason == "permanent_status"
    assert outcome.error == f"HTTP {status}"
    assert outcome.retry_after is None  # only read for retryable statuses


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_parsed_for_retryable_statuses(status: int) -> None:
    assert classify_status(status, "120", NOW).retry_after == 120.0
    assert classify_status(status, "soon", NOW).retry_after is None


def test_retry_after_uses_the_clock_when_now_is_not_given() -> None:
    future = datetime.fromtimestamp(4_000_000_000, tz=UTC)
    delay = classify_status(503, format_datetime(future, usegmt=True)).retry_after
    assert delay is not None
    assert 0 < delay <= 4_000_000_000


def test_timeout() -> None:
    outcome = outcome_for_error(DeliveryTimeoutError(10))
    assert outcome == Outcome(OutcomeKind.RETRYABLE, None, "timeout after 10s", "timeout")
    assert outcome_for_error(DeliveryTimeoutError(2.5)).error == "timeout after 2.5s"


class ClientConnectorError(OSError):
    pass


def test_connection_error() -> None:
    outcome = connection_error_outcome(ClientConnectorError("Cannot connect to host h:443"))
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.status is None
    assert outcome.status_class == "connection_error"
    assert outcome.error == "connection error: ClientConnectorError: Cannot connect to host h:443"


def test_connection_error_without_text() -> None:
    assert connection_error_outcome(ConnectionResetError()).error == (
        "connection error: ConnectionResetError"
    )


def test_connection_error_text_is_one_short_line() -> None:
    error = connection_error_outcome(RuntimeError("line one\nline two " + "x" * 500)).error
    assert error is not None
    assert "\n" not in error
    assert len(error) == 200
    assert error.startswith("connection error: RuntimeError: line one line two xxx")
    assert error.endswith("...")


def test_destination_not_allowed() -> None:
    outcome = outcome_for_error(DestinationRefusedError("10.0.0.1 is private"))
    assert outcome == Outcome(
        OutcomeKind.PERMANENT,
        None,
        "destination not allowed: 10.0.0.1 is private",
        "destination_not_allowed",
        None,
        "destination_not_allowed",
    )


@pytest.mark.parametrize(
    "outcome",
    [
        classify_status(200),
        classify_status(101),
        classify_status(302),
        classify_status(404),
        classify_status(503),
        outcome_for_error(DeliveryTimeoutError(1)),
        connection_error_outcome(OSError("x")),
        outcome_for_error(DestinationRefusedError("x")),
        outcome_for_error(ProtocolError("x")),
        outcome_for_error(IncompleteResponseError("x")),
        outcome_for_error(UnencodableRequestError("x")),
    ],
)
def test_labels_are_the_metrics_closed_sets(outcome: Outcome) -> None:
    assert outcome.status_class in STATUS_CLASSES
    assert outcome.kind.value in OUTCOMES


# --- errors → outcomes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            DeliveryTimeoutError(10),
            Outcome(OutcomeKind.RETRYABLE, None, "timeout after 10s", "timeout"),
        ),
        (
            ConnectionFailedError(cause=ConnectionRefusedError(111, "Connection refused")),
            Outcome(
                OutcomeKind.RETRYABLE,
                None,
                "connection error: ConnectionRefusedError: [Errno 111] Connection refused",
                "connection_error",
            ),
        ),
        (
            ProtocolError("invalid HTTP response: Invalid status code"),
            Outcome(
                OutcomeKind.RETRYABLE,
                None,
                "connection error: ProtocolError: invalid HTTP response: Invalid status code",
                "connection_error",
            ),
        ),
        (
            IncompleteResponseError("connection closed before the response"),
            Outcome(
                OutcomeKind.RETRYABLE,
                None,
                "connection error: IncompleteResponseError: connection closed before the response",
                "connection_error",
            ),
        ),
        (
            UnencodableRequestError("a header name or value contains CR or LF"),
            Outcome(
                OutcomeKind.RETRYABLE,
                None,
                "connection error: UnencodableRequestError: a header name or value contains CR "
                "or LF",
                "connection_error",
            ),
        ),
        (
            DestinationRefusedError("h resolves to a private address"),
            Outcome(
                OutcomeKind.PERMANENT,
                None,
                "destination not allowed: h resolves to a private address",
                "destination_not_allowed",
                None,
                "destination_not_allowed",
            ),
        ),
    ],
)
def test_outcome_for_error(error: NoResponseError, expected: Outcome) -> None:
    assert outcome_for_error(error) == expected
    assert isinstance(error, StreamWfmError)
    assert error.retriable is expected.retriable


def test_the_connection_error_shorthand_is_outcome_for_error() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert connection_error_outcome(refused) == outcome_for_error(
        ConnectionFailedError(cause=refused)
    )
    # A delivery error given as a cause keeps its own name in the text.
    assert connection_error_outcome(ProtocolError("x")) == outcome_for_error(ProtocolError("x"))


class _Refusal(NoResponseError):
    """Not a type outcome_for_error knows: it reads the flags."""

    retriable = False
    reason = "some_reason"
    status_class = "destination_not_allowed"


def test_outcome_for_error_reads_the_flags_not_the_type() -> None:
    outcome = outcome_for_error(_Refusal("line one\nline two " + "x" * 500))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.reason == "some_reason"
    assert outcome.status_class == "destination_not_allowed"
    assert outcome.error is not None
    assert outcome.error.startswith("line one line two xxx")
    assert len(outcome.error) == 200
    assert outcome_for_error(ConnectionFailedError()).error == (
        "connection error: ConnectionFailedError"
    )


# --- Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        ("007", 7.0),
        ("99999999999999999999999999", MAX_RETRY_AFTER_SECONDS),
        ("9" * 5000, MAX_RETRY_AFTER_SECONDS),
        ("-1", None),
        ("1.5", None),
        ("+5", None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("١٢", None),  # Arabic-Indic digits are not delta-seconds
    ],
)
def test_retry_after_delta_seconds_and_garbage(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 25 Nov 2025 09:02:00 GMT", 120.0),  # IMF-fixdate
        ("Tuesday, 25-Nov-25 09:02:00 GMT", 120.0),  # obsolete RFC 850
        ("Tue Nov 25 09:02:00 2025", 120.0),  # obsolete asctime (no zone: UTC)
        ("Tue, 25 Nov 2025 09:02:00", 120.0),  # no zone: UTC
        ("Tue, 25 Nov 2025 09:00:00 GMT", 0.0),
        ("Tue, 25 Nov 2025 08:00:00 GMT", 0.0),  # in the past
        ("Mon, 01 Jan 1990 00:00:00 GMT", 0.0),
        ("Tue, 25 Nov 2025 10:02:00 +0100", 120.0),
    ],
)
def test_retry_after_http_date(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    ["Tue, 32 Nov 2025 09:02:00 GMT", "Tue, 25 Nov 2025 25:02:00 GMT", "25 Nov", "GMT", "Tue,"],
)
def test_retry_after_bad_dates(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.text(max_size=40), st.floats(min_value=0, max_value=4e9))
def test_parse_retry_after_never_raises(value: str, now: float) -> None:
    result = parse_retry_after(value, now)
    assert result is None or 0 <= result <= MAX_RETRY_AFTER_SECONDS


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
    )
)
def test_http_dates_parse_to_the_right_delay(when: datetime) -> None:
    when = when.replace(microsecond=0)
    result = parse_retry_after(format_datetime(when, usegmt=True), NOW)
    assert result == pytest.approx(max(0.0, min(when.timestamp() - NOW, MAX_RETRY_AFTER_SECONDS)))
