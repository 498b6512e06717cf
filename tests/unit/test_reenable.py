"""The pure parts of re-enabling an integration (docs/contract.md §10): where its failure
period starts, which of the account's dead letters are redriven (reason, account, window,
once per event id) and in which order, and the dead-letter filter on several reasons."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.events import EventKind
from stream_wfm.health.records import Notice, iso_utc
from stream_wfm.health.reenable import (
    choose_dead_letters,
    failure_period_start,
    period_filter,
    source_order,
)
from stream_wfm.retry.dead_letters import DlqEntry, DlqFilter
from stream_wfm.retry.records import DlqRecord, SourceRecord

ACME = "15300002"
GLOBEX = "15300003"
T0 = 1_796_637_600.0  # 2026-12-07T10:00:00Z
T0_MS = int(T0 * 1000)
DAY = 86_400.0


def letter(
    event_id: str,
    *,
    at_ms: int = T0_MS,
    account_id: str | None = ACME,
    reason: str = "endpoint_disabled",
    source_ms: int | None = T0_MS - 1000,
    source: tuple[str, int, int] = ("wfm.agent-events", 0, 0),
    dlq: tuple[int, int] = (0, 0),
) -> DlqEntry:
    """A dead letter of ``event_id``; ``source`` is its input record's topic, partition and
    offset, ``dlq`` its own partition and offset on the DLQ topic."""
    topic, partition, offset = source
    record = DlqRecord(
        source=SourceRecord(topic, partition, offset, b"k", b"{}", source_ms),
        account_id=account_id, event_id=event_id, kind=EventKind.AGENT, attempts=1,
        reason=reason, detail=None, last_error="HTTP 503", last_status=503,
        first_attempt_at_ms=at_ms, dead_lettered_at_ms=at_ms,
    )  # fmt: skip
    return DlqEntry("wfm.webhooks.dlq", dlq[0], dlq[1], at_ms, record)


def notice(failing_since: float, at: float, account_id: str = ACME, kind: str = "agent") -> Notice:
    return Notice(
        notice_id=f"n-{failing_since}", account_id=account_id, kind=kind,
        url="https://wfm.example.com/agent", failing_since=iso_utc(failing_since),
        last_error="HTTP 503", at=iso_utc(at),
    )  # fmt: skip


def ids(letters: list[DlqEntry]) -> list[str]:
    return [dl.record.event_id for dl in letters]


# --- the failure period ------------------------------------------------------------------------


def test_the_newest_notice_of_the_account_gives_the_start() -> None:
    notices = [
        notice(T0 - 10 * DAY, at=T0 - 7 * DAY),  # an earlier failure period
        notice(T0 - 4 * DAY, at=T0 - DAY),  # the one that disabled it
        notice(T0 - 2 * DAY, at=T0, account_id=GLOBEX),  # another account's
    ]
    start = failure_period_start(notices, ACME, iso_utc(T0 - DAY), auto_disable_seconds=3 * DAY)
    assert start == T0 - 4 * DAY


def test_newest_is_by_the_notice_time_then_by_position() -> None:
    late_first = [notice(T0 - 2 * DAY, at=T0), notice(T0 - 9 * DAY, at=T0 - 5 * DAY)]
    assert failure_period_start(late_first, ACME, None, None) == T0 - 2 * DAY
    same_time = [notice(T0 - 3 * DAY, at=T0), notice(T0 - 2 * DAY, at=T0)]
    assert failure_period_start(same_time, ACME, None, None) == T0 - 2 * DAY


@given(st.permutations([notice(T0 - d * DAY, at=T0 - d * DAY / 2) for d in (1, 5, 9, 13)]))
def test_the_order_on_the_topic_does_not_change_which_notice_is_newest(
    notices: list[Notice],
) -> None:
    assert failure_period_start(notices, ACME, None, None) == T0 - DAY


@pytest.mark.parametrize(
    ("disabled_at", "auto_disable_seconds", "expected"),
    [
        (iso_utc(T0), 3 * DAY, T0 - 3 * DAY),  # disabled_at minus STREAM_WFM_AUTO_DISABLE_AFTER
        (iso_utc(T0), 90.0, T0 - 90.0),
        (iso_utc(T0), None, T0),  # auto-disable off: disabled_at itself
        (None, 3 * DAY, None),  # nothing to go by
        (None, None, None),
    ],
)
def test_without_a_notice_of_the_account_the_start_falls_back_to_disabled_at(
    disabled_at: str | None, auto_disable_seconds: float | None, expected: float | None
) -> None:
    others = [notice(T0 - 9 * DAY, at=T0 - 8 * DAY, account_id=GLOBEX)]
    for notices in ([], others):
        assert failure_period_start(notices, ACME, disabled_at, auto_disable_seconds) == expected


def test_a_notice_wins_over_the_fallback() -> None:
    start = failure_period_start([notice(T0 - 5 * DAY, at=T0)], ACME, iso_utc(T0), 3 * DAY)
    assert start == T0 - 5 * DAY


# --- the filter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("endpoint_disabled", True), ("retries_exhausted", True), ("permanent_status", False),
     ("invalid_event", False), ("destination_not_allowed", False)],
)  # fmt: skip
def test_filter_on_several_reasons(reason: str, expected: bool) -> None:
    flt = DlqFilter(reasons=frozenset({"endpoint_disabled", "retries_exhausted"}))
    assert flt.matches(letter("e", reason=reason)) is expected


def test_reasons_and_reason_both_apply() -> None:
    flt = DlqFilter(reason="endpoint_disabled", reasons=frozenset({"retries_exhausted"}))
    assert not flt.matches(letter("e", reason="endpoint_disabled"))
    assert not flt.matches(letter("e", reason="retries_exhausted"))


def test_period_filter_is_the_account_the_two_reasons_and_the_window() -> None:
    flt = period_filter(ACME, since=T0, until=T0 + 60)
    assert flt.account_id == ACME
    assert flt.reasons == frozenset({"endpoint_disabled", "retries_exhausted"})
    assert flt.matches(letter("e", at_ms=T0_MS))  # from failing_since on, inclusive
    assert not flt.matches(letter("e", at_ms=T0_MS - 1))
    assert flt.matches(letter("e", at_ms=T0_MS + 60_000))  # up to the re-enable, inclusive
    assert not flt.matches(letter("e", at_ms=T0_MS + 60_001))
    assert not flt.matches(letter("e", account_id=GLOBEX))
    assert not flt.matches(letter("e", account_id=None))
    assert not flt.matches(letter("e", reason="permanent_status"))


# --- the choice ----------------------------------------------------------------------------


def test_the_accounts_redriven_reasons_in_the_period_once_each_oldest_first() -> None:
    flt = period_filter(ACME, since=T0, until=T0 + 3600)
    inside = T0_MS + 60_000
    letters = [
        letter("e-2", at_ms=inside, source_ms=T0_MS + 2, source=("agent", 0, 2)),
        letter("e-1", at_ms=inside + 5, reason="retries_exhausted", source_ms=T0_MS + 1,
               source=("agent", 0, 1)),
        letter("e-before", at_ms=T0_MS - 1, source_ms=T0_MS - 9),
        letter("e-perm", at_ms=inside, reason="permanent_status", source_ms=T0_MS),
        letter("e-globex", at_ms=inside, account_id=GLOBEX, source_ms=T0_MS),
        letter("e-2", at_ms=inside + 9, source_ms=T0_MS + 2, source=("agent", 0, 2),
               dlq=(1, 7)),  # the same event dead-lettered twice
        letter("e-3", at_ms=inside + 1, source_ms=T0_MS + 3, source=("agent", 1, 0)),
        letter("e-after", at_ms=T0_MS + 3_600_001, source_ms=T0_MS + 4),
    ]  # fmt: skip
    choice = choose_dead_letters(letters, flt)
    assert ids(choice.letters) == ["e-1", "e-2", "e-3"]
    assert choice.duplicates == 1
    assert choice.letters[1].partition == 0  # of two equal copies, the first read


def test_oldest_first_by_source_timestamp_then_topic_partition_offset() -> None:
    letters = [
        letter("d", source_ms=T0_MS + 1, source=("a", 0, 0)),
        letter("c", source_ms=T0_MS, source=("b", 0, 0)),
        letter("b", source_ms=T0_MS, source=("a", 1, 0)),
        letter("a2", source_ms=T0_MS, source=("a", 0, 10)),
        letter("a1", source_ms=T0_MS, source=("a", 0, 9)),
        letter("none", source_ms=None, source=("z", 9, 9)),  # no timestamp counts as oldest
    ]
    choice = choose_dead_letters(letters, DlqFilter())
    assert ids(choice.letters) == ["none", "a1", "a2", "b", "c", "d"]


def test_nothing_matching_is_nothing_chosen() -> None:
    flt = period_filter(ACME, since=T0 - 60, until=T0 + 60)
    choice = choose_dead_letters([letter("e", reason="permanent_status")], flt)
    assert (choice.letters, choice.duplicates) == ([], 0)


_letters = st.builds(
    letter,
    st.sampled_from(["e-1", "e-2", "e-3", "e-4"]),
    at_ms=st.integers(T0_MS - 10, T0_MS + 10),
    account_id=st.sampled_from([ACME, GLOBEX, None]),
    reason=st.sampled_from(["endpoint_disabled", "retries_exhausted", "permanent_status"]),
    source_ms=st.none() | st.integers(T0_MS - 5, T0_MS + 5),
    source=st.tuples(st.sampled_from(["agent", "call"]), st.integers(0, 2), st.integers(0, 3)),
    dlq=st.tuples(st.integers(0, 2), st.integers(0, 50)),
)


@given(st.lists(_letters, max_size=20), st.integers(-12, 12), st.integers(-12, 12))
def test_choice_properties(letters: list[DlqEntry], since: int, until: int) -> None:
    flt = period_filter(ACME, since=(T0_MS + since) / 1000, until=(T0_MS + until) / 1000)
    matching = [dl for dl in letters if flt.matches(dl)]
    choice = choose_dead_letters(letters, flt)
    chosen = choice.letters
    # Only matching letters, each event once, every matching event.
    assert all(dl in matching for dl in chosen)
    assert len(set(ids(chosen))) == len(chosen)
    assert set(ids(chosen)) == set(ids(matching))
    assert len(chosen) + choice.duplicates == len(matching)
    assert choice.duplicates == sum(n - 1 for n in Counter(ids(matching)).values())
    # Oldest first; of an event's copies the oldest is kept.
    keys = [source_order(dl) for dl in chosen]
    assert keys == sorted(keys)
    for dl in chosen:
        copies = [m for m in matching if m.record.event_id == dl.record.event_id]
        assert source_order(dl) == min(source_order(m) for m in copies)


def test_source_order_reads_the_input_record() -> None:
    dl = letter("e", source_ms=T0_MS, source=("wfm.call-events", 3, 42), dlq=(5, 6))
    assert source_order(dl) == (T0_MS, "wfm.call-events", 3, 42)
    assert source_order(letter("e", source_ms=None))[0] < 0
