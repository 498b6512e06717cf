"""The pure parts of the dead-letter tools: filters, time arguments, pacing, newest-N,
skip rules and the redrive record."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

import pytest

from stream_wfm.cli.dlq import parse_time
from stream_wfm.events import EventKind
from stream_wfm.retry.dead_letters import DlqEntry, DlqFilter, _Newest
from stream_wfm.retry.exceptions import RedriveError
from stream_wfm.retry.records import DlqRecord, SourceRecord
from stream_wfm.retry.redrive import _Pacer, redrive, redrive_record, skip_reason
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import render

T0 = 1_764_064_800_000  # 2025-11-25T10:00:00Z


def letter(
    at_ms: int = T0,
    account_id: str | None = "15300002",
    reason: str = "permanent_status",
    offset: int = 0,
    partition: int = 0,
    first_attempt_at_ms: int | None = T0 - 5,
) -> DlqEntry:
    source = SourceRecord("wfm.agent-events", 3, 42, b"15300002:7", b'{"a":1}', T0 - 10)
    record = DlqRecord(
        source=source, account_id=account_id, event_id=f"e-{offset}", kind=EventKind.AGENT,
        attempts=1, reason=reason, detail=None, last_error="HTTP 400", last_status=400,
        first_attempt_at_ms=first_attempt_at_ms, dead_lettered_at_ms=at_ms,
    )  # fmt: skip
    return DlqEntry("wfm.webhooks.dlq", partition, offset, at_ms, record)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (DlqFilter(), True),
        (DlqFilter(account_id="15300002"), True),
        (DlqFilter(account_id="15300003"), False),
        (DlqFilter(reason="permanent_status"), True),
        (DlqFilter(reason="invalid_event"), False),
        (DlqFilter(since_ms=T0), True),  # since is inclusive
        (DlqFilter(since_ms=T0 + 1), False),
        (DlqFilter(until_ms=T0), False),  # until is exclusive
        (DlqFilter(until_ms=T0 + 1), True),
        (DlqFilter(account_id="15300002", reason="permanent_status", since_ms=T0,
                   until_ms=T0 + 1), True),
    ],
)  # fmt: skip
def test_filter_matches(flt: DlqFilter, expected: bool) -> None:
    assert flt.matches(letter()) is expected


def test_filter_on_account_never_matches_letters_without_account() -> None:
    assert not DlqFilter(account_id="15300002").matches(letter(account_id=None))


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2025-11-25T10:00:00Z", T0),
        ("2025-11-25T10:00:00", T0),  # no offset: UTC
        ("2025-11-25T11:00:00+01:00", T0),
        ("2025-11-25T10:00:00.250Z", T0 + 250),
        ("90s", T0 - 90_000),
        ("30m", T0 - 1_800_000),
        ("2h", T0 - 7_200_000),
        ("7d", T0 - 7 * 86_400_000),
    ],
)
def test_parse_time(text: str, expected_ms: int) -> None:
    assert parse_time(text, now=lambda: T0 / 1000) == expected_ms


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-5m", "10w", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time(text)


def test_pacer_spaces_calls_at_the_rate() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock[0] += seconds

    pacer = _Pacer(4.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert slept == [0.25, 0.25]
    clock[0] += 10  # idle for a while: no burst credit is needed, no sleep
    pacer.wait()
    assert slept == [0.25, 0.25]


def test_pacer_without_rate_never_sleeps() -> None:
    pacer = _Pacer(None, sleep=lambda _s: pytest.fail("slept"))
    for _ in range(100):
        pacer.wait()


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_pacer_rejects_non_positive_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        _Pacer(rate)


@pytest.mark.parametrize("limit", [None, 0, 1, 3, 10])
def test_newest_keeps_the_newest_in_time_order(limit: int | None) -> None:
    letters = [letter(at_ms=T0 + (i * 7) % 10, offset=i) for i in range(10)]
    kept = _Newest(limit)
    for dl in letters:
        kept.add(dl)
    expected = sorted(letters, key=lambda d: d.record.dead_lettered_at_ms)
    if limit is not None:
        expected = expected[len(expected) - limit :]
    assert kept.sorted() == expected


def test_invalid_events_and_letters_without_account_are_skipped() -> None:
    assert skip_reason(letter()) is None
    assert skip_reason(letter(reason="invalid_event", account_id=None)) is not None
    assert skip_reason(letter(reason="invalid_retry_record", account_id=None)) is not None


def test_a_dead_letter_whose_value_was_not_kept_is_skipped() -> None:
    too_large = letter(reason="record_too_large")
    record = replace(too_large.record, source=too_large.record.source.without_value())
    reason = skip_reason(replace(too_large, record=record))
    assert reason is not None
    assert "record_too_large" in reason


def test_redrive_record_is_due_now_with_a_fresh_budget() -> None:
    dl = letter(offset=9, partition=2)
    record = redrive_record(dl, now_ms=T0 + 1000)
    assert record.attempt == 1
    assert record.due_at_ms == T0 + 1000
    assert record.source == dl.record.source
    assert (record.event_id, record.account_id, record.kind) == ("e-9", "15300002", EventKind.AGENT)
    assert record.last_error == "redrive of dlq wfm.webhooks.dlq[2]@9"
    assert record.first_attempt_at_ms == T0 - 5
    assert redrive_record(letter(first_attempt_at_ms=None), T0).first_attempt_at_ms == T0


def test_render_progress() -> None:
    assert render("redrive", 5, 10, width=10) == "redrive [#####.....] 5/10"
    assert render("x", 0, 0, "done", width=4) == "x [####] 0/0  done"


def test_redrive_stops_and_reports_when_the_producer_refuses_a_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # librdkafka refuses a record above message.max.bytes at produce() time: no broker needed.
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka={"message.max.bytes": "2000"})
    big = letter(offset=1)
    big_source = SourceRecord("wfm.agent-events", 0, 1, b"k", b"x" * 5000, T0)
    big = DlqEntry(big.topic, 0, 1, T0, replace(big.record, source=big_source))
    letters = [letter(offset=0, reason="invalid_event", account_id=None), big, letter(offset=2)]
    with (
        caplog.at_level(logging.INFO, "stream_wfm.retry.redrive"),
        pytest.raises(RedriveError) as info,
    ):
        redrive(settings, letters)
    report = info.value.report
    assert (report.planned, report.redriven, report.skipped) == (2, 0, 1)
    results = [item["result"] for item in report.items]
    assert results[0].startswith("skipped: invalid event")
    assert results[1].startswith("failed: cannot write to wfm.webhooks.retry.10s")
    assert results[2] == "failed: not attempted after an earlier error"
    assert "2 of 2 dead letters were not redriven" in str(info.value)
    audit = [r for r in caplog.records if r.getMessage() == "dlq redrive"]
    assert len(audit) == 1
    assert audit[0].levelno == logging.ERROR
    assert audit[0].__dict__["failed"] == 2
