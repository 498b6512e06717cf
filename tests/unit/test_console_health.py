"""The console's view of endpoint health (docs/contract.md §10): merging the instances'
health records of one account, the account's health label, and the follower's
bookkeeping of the health topic (latest record per key, tombstones, invalid records)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.console.health import (
    FRESH_SECONDS,
    NO_DATA_TITLE,
    AccountHealth,
    EndpointHealth,
    Health,
    health_label,
    merge_health,
)
from stream_wfm.console.healthfeed import HealthFeed
from stream_wfm.console.healthview import ago, moment
from stream_wfm.health.records import (
    BREAKER_STATES,
    BreakerState,
    EndpointReport,
    HealthRecord,
    encode_health_record,
    iso_utc,
    parse_iso_utc,
)

NOW = 1_800_000_000.0


def report(
    state: BreakerState = "closed",
    *,
    attempts: int = 0,
    failures: int = 0,
    deferred: int = 0,
    success: float | None = None,
    failure: float | None = None,
    error: str | None = None,
    failing_since: float | None = None,
) -> EndpointReport:
    """A report; times are seconds before :data:`NOW`."""
    return EndpointReport(
        state=state,
        attempts_5m=attempts,
        failures_5m=failures,
        deferred_5m=deferred,
        last_success_at=None if success is None else iso_utc(NOW - success),
        last_failure_at=None if failure is None else iso_utc(NOW - failure),
        last_error=error,
        failing_since=None if failing_since is None else iso_utc(NOW - failing_since),
    )


def record(
    instance: str = "i-1", age: float = 5, account: str = "acc", **endpoints: EndpointReport
) -> HealthRecord:
    """One instance's record, written ``age`` seconds before :data:`NOW`."""
    return HealthRecord(account, instance, iso_utc(NOW - age), dict(endpoints))


# --- merge: examples ----------------------------------------------------------------------


def test_one_record_is_its_own_merge() -> None:
    agent = report("half_open", attempts=7, failures=2, deferred=3, success=30, failure=20,
                   error="HTTP 503", failing_since=400)  # fmt: skip
    merged = merge_health([record(agent=agent)], NOW)
    assert merged == AccountHealth(
        endpoints={
            "agent": EndpointHealth(
                kind="agent",
                state="half_open",
                attempts_5m=7,
                failures_5m=2,
                deferred_5m=3,
                last_success_at=NOW - 30,
                last_failure_at=NOW - 20,
                last_error="HTTP 503",
                failing_since=NOW - 400,
                instances=1,
            )
        },
        fresh_records=1,
    )


def test_instances_are_merged_per_kind() -> None:
    records = [
        record("i-1", agent=report("closed", attempts=10, failures=1, deferred=0, success=3,
                                   failure=50, error="HTTP 500", failing_since=None),
               call=report("closed", attempts=4, success=8)),
        record("i-2", agent=report("open", attempts=5, failures=5, deferred=40, success=90,
                                   failure=2, error="timeout after 10s", failing_since=600)),
        record("i-3", agent=report("half_open", attempts=1, failures=1, failure=9,
                                   error="ConnectError", failing_since=300)),
    ]  # fmt: skip
    merged = merge_health(records, NOW)
    assert merged.fresh_records == 3
    assert sorted(merged.endpoints) == ["agent", "call"]
    agent = merged.endpoints["agent"]
    assert agent.state == "open"  # the worst
    assert (agent.attempts_5m, agent.failures_5m, agent.deferred_5m) == (16, 7, 40)
    assert agent.last_success_at == NOW - 3  # the latest
    assert agent.last_failure_at == NOW - 2
    assert agent.last_error == "timeout after 10s"  # of the latest failure
    assert agent.failing_since == NOW - 600  # the earliest
    assert agent.instances == 3
    call = merged.endpoints["call"]
    assert (call.state, call.attempts_5m, call.instances) == ("closed", 4, 1)
    assert call.last_failure_at is None
    assert call.last_error is None


@pytest.mark.parametrize(
    ("age", "counted"),
    [
        (0, True),
        (FRESH_SECONDS - 1, True),
        (FRESH_SECONDS, True),  # exactly 2 minutes old: not yet older
        (FRESH_SECONDS + 1, False),
        (3600, False),
        (-30, True),  # a little ahead of this clock (another host's clock)
    ],
)
def test_records_older_than_two_minutes_are_ignored(age: float, counted: bool) -> None:
    merged = merge_health([record(age=age, agent=report("open", attempts=3))], NOW)
    assert merged.fresh_records == (1 if counted else 0)
    assert ("agent" in merged.endpoints) is counted


def test_the_clock_is_a_parameter() -> None:
    records = [record(age=0, agent=report("open"))]
    assert merge_health(records, NOW).endpoints
    assert not merge_health(records, NOW + FRESH_SECONDS + 1).endpoints
    assert merge_health(records, NOW + 60, max_age=61).endpoints
    assert not merge_health(records, NOW + 60, max_age=59).endpoints


def test_a_time_that_does_not_parse_counts_as_unknown() -> None:
    good = record(age=5, agent=report("closed", attempts=1))
    bad_at = HealthRecord("acc", "i-2", "yesterday", {"agent": report("open")})
    odd = EndpointReport("closed", 1, 1, 0, "not a time", "also not", "HTTP 500", "never")
    merged = merge_health([good, bad_at, record("i-3", agent=odd)], NOW)
    assert merged.fresh_records == 2  # a record without a readable time is not fresh
    agent = merged.endpoints["agent"]
    assert agent.state == "closed"
    assert (agent.last_success_at, agent.last_failure_at, agent.failing_since) == (None,) * 3


def test_no_records_no_data() -> None:
    assert merge_health([], NOW) == AccountHealth(endpoints={}, fresh_records=0)


# --- labels ---------------------------------------------------------------------------------


LABEL_CASES: list[tuple[str, list[HealthRecord], bool, str | None, Health]] = [
    ("no records", [], True, None, Health.NO_DATA),
    ("only stale records", [record(age=600, agent=report("open"))], True, None, Health.NO_DATA),
    ("a fresh record without endpoints", [record()], True, None, Health.HEALTHY),
    ("closed, no failures", [record(agent=report(attempts=9, success=1))], True, None,
     Health.HEALTHY),
    ("failed, then succeeded", [record(agent=report(attempts=9, failures=3, success=1,
                                                     failure=5))], True, None, Health.HEALTHY),
    ("succeeded, then failed", [record(agent=report(attempts=9, failures=3, success=5,
                                                     failure=1))], True, None, Health.FAILING),
    ("failures, never a success", [record(call=report(attempts=2, failures=2, failure=1))],
     True, None, Health.FAILING),
    ("a failure long ago, none in 5 min", [record(agent=report(attempts=4, failures=0,
                                                                success=400, failure=1))],
     True, None, Health.HEALTHY),
    ("open", [record(agent=report("open", failures=10, failure=1))], True, None,
     Health.CIRCUIT_OPEN),
    ("half open", [record(agent=report("half_open"))], True, None, Health.CIRCUIT_OPEN),
    ("open on one instance only", [record("i-1", agent=report(attempts=5, success=1)),
                                   record("i-2", agent=report("open"))], True, None,
     Health.CIRCUIT_OPEN),
    ("open beats failing", [record(agent=report(failures=1, failure=1),
                                   call=report("open"))], True, None, Health.CIRCUIT_OPEN),
    ("open but stale", [record(age=121, agent=report("open")),
                        record("i-2", agent=report(attempts=1, success=1))], True, None,
     Health.HEALTHY),
    ("failing on one instance, fine on another", [
        record("i-1", agent=report(attempts=5, success=30)),
        record("i-2", agent=report(attempts=5, failures=5, failure=2))], True, None,
     Health.FAILING),
    ("disabled by the service", [], False, "endpoint_failing", Health.DISABLED),
    ("disabled by the service, still open", [record(agent=report("open"))], False,
     "endpoint_failing", Health.DISABLED),
    ("disabled by an operator, no data", [], False, None, Health.NO_DATA),
    ("disabled by an operator, open", [record(agent=report("open"))], False, None,
     Health.CIRCUIT_OPEN),
]  # fmt: skip


@pytest.mark.parametrize(
    ("records", "enabled", "reason", "expected"),
    [case[1:] for case in LABEL_CASES],
    ids=[case[0] for case in LABEL_CASES],
)
def test_health_label(
    records: list[HealthRecord], enabled: bool, reason: str | None, expected: Health
) -> None:
    merged = merge_health(records, NOW)
    assert health_label(merged, enabled=enabled, disabled_reason=reason) is expected


@pytest.mark.parametrize(
    ("label", "text", "css_class"),
    [
        (Health.DISABLED, "Disabled: endpoint failing", "health-disabled"),
        (Health.CIRCUIT_OPEN, "Circuit open", "health-open"),
        (Health.FAILING, "Failing", "health-failing"),
        (Health.HEALTHY, "Healthy", "health-ok"),
        (Health.NO_DATA, "—", "health-none"),
    ],
)
def test_each_label_has_its_text_class_and_description(
    label: Health, text: str, css_class: str
) -> None:
    assert str(label) == text
    assert label.css_class == css_class
    assert label.description


def test_no_data_says_why() -> None:
    assert (
        Health.NO_DATA.description
        == NO_DATA_TITLE
        == "no deliveries reported in the last 2 minutes"
    )


# --- merge: properties -----------------------------------------------------------------------

# Few distinct times, so that two instances often report the same second (ties).
_seconds = st.sampled_from([0, 1, 10, 60, 119, 300, 900])
_reports = st.builds(
    report,
    st.sampled_from(BREAKER_STATES),
    attempts=st.integers(0, 500),
    failures=st.integers(0, 500),
    deferred=st.integers(0, 500),
    success=st.none() | _seconds,
    failure=st.none() | _seconds,
    error=st.none()
    | st.sampled_from(["HTTP 500", "HTTP 503", "timeout after 10s", "ConnectError"]),
    failing_since=st.none() | _seconds,
)
_endpoints = st.dictionaries(st.sampled_from(["agent", "call"]), _reports, max_size=2)


def _records(ages: st.SearchStrategy[int]) -> st.SearchStrategy[list[HealthRecord]]:
    def build(pairs: list[tuple[int, dict[str, EndpointReport]]]) -> list[HealthRecord]:
        return [
            HealthRecord("acc", f"i-{n}", iso_utc(NOW - age), endpoints)
            for n, (age, endpoints) in enumerate(pairs)
        ]

    return st.lists(st.tuples(ages, _endpoints), max_size=6).map(build)


_fresh_records = _records(st.integers(min_value=-60, max_value=int(FRESH_SECONDS)))
_stale_records = _records(st.integers(min_value=int(FRESH_SECONDS) + 1, max_value=86_400))


@given(records=_fresh_records, data=st.data())
def test_the_order_of_records_does_not_matter(records: list[HealthRecord], data: Any) -> None:
    shuffled = data.draw(st.permutations(records))
    assert merge_health(shuffled, NOW) == merge_health(records, NOW)


@given(fresh=_fresh_records, stale=_stale_records, data=st.data())
def test_stale_records_never_count(
    fresh: list[HealthRecord], stale: list[HealthRecord], data: Any
) -> None:
    mixed = data.draw(st.permutations([*fresh, *stale]))
    assert merge_health(mixed, NOW) == merge_health(fresh, NOW)
    assert merge_health(stale, NOW) == AccountHealth(endpoints={}, fresh_records=0)


@given(records=_fresh_records)
def test_merged_figures_follow_the_reports(records: list[HealthRecord]) -> None:
    merged = merge_health(records, NOW)
    assert merged.fresh_records == len(records)
    severity = {"closed": 0, "half_open": 1, "open": 2}
    for kind in ("agent", "call"):
        reports = [r.endpoints[kind] for r in records if kind in r.endpoints]
        if not reports:
            assert kind not in merged.endpoints
            continue
        got = merged.endpoints[kind]
        assert got.instances == len(reports)
        assert got.attempts_5m == sum(r.attempts_5m for r in reports)
        assert got.failures_5m == sum(r.failures_5m for r in reports)
        assert got.deferred_5m == sum(r.deferred_5m for r in reports)
        assert severity[got.state] == max(severity[r.state] for r in reports)
        successes = [parse_iso_utc(r.last_success_at) for r in reports if r.last_success_at]
        failures = [parse_iso_utc(r.last_failure_at) for r in reports if r.last_failure_at]
        since = [parse_iso_utc(r.failing_since) for r in reports if r.failing_since]
        assert got.last_success_at == max(successes, default=None)
        assert got.last_failure_at == max(failures, default=None)
        assert got.failing_since == min(since, default=None)
        latest = [r.last_error for r in reports if r.last_failure_at and
                  parse_iso_utc(r.last_failure_at) == got.last_failure_at]  # fmt: skip
        if got.last_failure_at is None:
            assert got.last_error is None
        else:
            assert got.last_error in latest


@given(records=_fresh_records | _stale_records, enabled=st.booleans())
def test_a_service_disabled_integration_is_labelled_so_whatever_the_records(
    records: list[HealthRecord], enabled: bool
) -> None:
    merged = merge_health(records, NOW)
    label = health_label(merged, enabled=enabled, disabled_reason="endpoint_failing")
    if enabled:  # not a state the config allows; the records decide
        assert label is not Health.DISABLED
    else:
        assert label is Health.DISABLED


@given(records=_stale_records)
def test_only_stale_records_are_no_data(records: list[HealthRecord]) -> None:
    merged = merge_health(records, NOW)
    assert health_label(merged, enabled=True, disabled_reason=None) is Health.NO_DATA


# --- the health topic's follower (no broker: records applied directly) ------------------------


def _value(rec: HealthRecord) -> bytes:
    return encode_health_record(rec)


def _feed() -> HealthFeed:
    return HealthFeed("health", {}, clock=lambda: NOW)


def test_the_feed_keeps_the_latest_record_per_key() -> None:
    feed = _feed()
    first = record("i-1", age=50, agent=report("open"))
    second = record("i-1", age=5, agent=report("closed", attempts=3))
    other = record("i-2", age=5, call=report("closed"))
    for rec in (first, other, second):
        feed.apply(rec.key.encode(), _value(rec))
    assert sorted(feed.records_of("acc"), key=lambda r: r.instance_id) == [second, other]
    assert feed.records_of("nobody") == []


def test_a_tombstone_deletes_the_instance_record() -> None:
    feed = _feed()
    one, two = record("i-1"), record("i-2")
    feed.apply(one.key.encode(), _value(one))
    feed.apply(two.key.encode(), _value(two))
    feed.apply(one.key.encode(), None)
    assert feed.records_of("acc") == [two]
    feed.apply(two.key.encode(), None)
    assert feed.records_of("acc") == []
    assert feed.accounts() == {}
    feed.apply(b"never/seen", None)  # nothing to delete: no error
    feed.apply(None, None)


def test_account_ids_with_a_slash_are_kept_apart() -> None:
    feed = _feed()
    a = record("b/i-1", account="a")  # key a/b/i-1
    ab = record("i-1", account="a/b")  # key a/b/i-1 as well
    feed.apply(a.key.encode(), _value(a))
    feed.apply(ab.key.encode(), _value(ab))  # same key: replaces the first
    assert feed.records_of("a") == []
    assert feed.records_of("a/b") == [ab]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (b"acc/i-1", b"not json", "not a health record"),
        (b"acc/i-1", orjson.dumps({"account_id": "acc"}), "not a health record"),
        (b"acc/i-9", encode_health_record(record("i-1")), "does not match"),
        (b"\xff\xfe", encode_health_record(record("i-1")), "not UTF-8"),
        (None, encode_health_record(record("i-1")), "no key"),
        (
            b"acc/i-1",
            encode_health_record(
                record("i-1", agent=EndpointReport("open", 1, 1, 0, None, "soon", None, None))
            ),
            "time",
        ),
    ],
    ids=["not json", "missing fields", "key mismatch", "key not utf-8", "no key", "bad time"],
)
def test_invalid_records_are_skipped_with_a_warning(
    key: bytes | None, value: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    feed = _feed()
    kept = record("i-1", agent=report("closed", attempts=1))
    feed.apply(kept.key.encode(), _value(kept))
    with caplog.at_level(logging.WARNING, "stream_wfm.console.healthfeed"):
        feed.apply(key, value)
    assert feed.records_of("acc") == [kept]  # the key keeps its last valid record
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert why in str(getattr(warning, "error", ""))
    assert feed.invalid_records == 1


def test_stale_records_are_pruned() -> None:
    feed = _feed()
    old, new = record("i-1", age=FRESH_SECONDS + 5), record("i-2", age=1)
    feed.apply(old.key.encode(), _value(old))
    feed.apply(new.key.encode(), _value(new))
    feed.prune()
    assert feed.records_of("acc") == [new]
    feed.apply(old.key.encode(), None)  # the pruned key's tombstone: nothing to do
    assert feed.records_of("acc") == [new]


# --- times on the pages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "just now"),  # another host's clock a little ahead
        (0.4, "just now"),
        (1, "1 s ago"),
        (59.9, "59 s ago"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h ago"),
        (2 * 86_400 - 1, "47 h ago"),
        (2 * 86_400, "2 days ago"),
        (30 * 86_400, "30 days ago"),
    ],
)
def test_ago(seconds: float, text: str) -> None:
    assert ago(seconds) == text


def test_moment() -> None:
    assert moment(None, NOW) == "—"
    assert moment(1_796_637_600.0, 1_796_637_600.0 + 180) == "2026-12-07 10:00:00 UTC (3 min ago)"
