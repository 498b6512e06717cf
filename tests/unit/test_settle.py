"""Settling: the decision after an attempt (a table and a property against the retry
policy's statement) and the Settler carrying settlements out against a fake writer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.delivery.exceptions import DestinationRefusedError
from stream_wfm.delivery.outcome import (
    Outcome,
    classify_status,
    outcome_for_error,
)
from stream_wfm.events import EventKind, decode_event
from stream_wfm.kafka.producer import ProduceError
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.handback import Handback
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.settle import FINISH, Defer, Retry, Settler, after_attempt
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import SourceRecord
from stream_wfm.retry.writer import DeadLetter
from tests.helpers.waiting import wait_until

OK = classify_status(200)
UNAVAILABLE = classify_status(503)
NOT_FOUND = classify_status(404)


@pytest.mark.parametrize(
    ("attempt", "outcome", "max_retries", "expected"),
    [
        (1, OK, 3, FINISH),
        (4, OK, 3, FINISH),
        (1, UNAVAILABLE, 3, Retry(1, UNAVAILABLE)),
        (3, UNAVAILABLE, 3, Retry(3, UNAVAILABLE)),
        (4, UNAVAILABLE, 3, DeadLetter("retries_exhausted", 4, None, "HTTP 503", 503)),
        (1, UNAVAILABLE, 0, DeadLetter("retries_exhausted", 1, None, "HTTP 503", 503)),
        (1, NOT_FOUND, 3, DeadLetter("permanent_status", 1, None, "HTTP 404", 404)),
    ],
)
def test_after_attempt_table(
    attempt: int, outcome: Outcome, max_retries: int, expected: Any
) -> None:
    assert after_attempt(attempt, outcome, max_retries) == expected


def test_a_refused_destination_is_dead_lettered_with_its_reason() -> None:
    outcome = outcome_for_error(DestinationRefusedError("loopback"))
    settlement = after_attempt(1, outcome, 3)
    assert isinstance(settlement, DeadLetter)
    assert settlement.reason == "destination_not_allowed"


@given(
    attempt=st.integers(1, 20),
    max_retries=st.integers(0, 10),
    status=st.sampled_from([200, 204, 301, 400, 404, 408, 425, 429, 500, 503]),
    retry_after=st.none() | st.floats(0, 7200),
)
def test_after_attempt_spends_at_most_max_retries(
    attempt: int, max_retries: int, status: int, retry_after: float | None
) -> None:
    """Stated in retry/policy.py: delivered → done; permanent → dead letter; a 429 or a
    retryable answer with Retry-After → deferred, the attempt not counted; otherwise
    retryable → retry while the retries used so far (attempt - 1) are fewer than
    max_retries."""
    outcome = replace(classify_status(status), retry_after=retry_after)
    settlement = after_attempt(attempt, outcome, max_retries)
    if 200 <= status < 300:
        assert settlement is FINISH
    elif status == 429 or (retry_after is not None and (status in (408, 425) or status >= 500)):
        assert settlement == Defer(attempt, outcome)
    elif status in (408, 425) or status >= 500:
        if attempt - 1 < max_retries:
            assert settlement == Retry(attempt, outcome)
        else:
            assert isinstance(settlement, DeadLetter)
            assert (settlement.reason, settlement.attempts) == ("retries_exhausted", attempt)
    else:
        assert isinstance(settlement, DeadLetter)
        assert settlement.reason == "permanent_status"


# --- the Settler ----------------------------------------------------------------------


class FakeWriter:
    """Records what would be written; the test resolves each write's future."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any, dict[str, Any]]] = []
        self.futures: list[asyncio.Future[Any]] = []

    def _future(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def plan(self, retry_number: int, retry_after: float | None) -> tuple[int, int]:
        """The tier is the retry number here, so that tests read it back."""
        return retry_number, 0

    def write_retry(self, work: Work, tier: int, due_ms: int, **kwargs: Any) -> asyncio.Future[Any]:
        self.writes.append(("retry", work, {"retry_number": tier, **kwargs}))
        return self._future()

    def dead_letter(self, work: Work, letter: DeadLetter) -> asyncio.Future[Any]:
        self.writes.append(("dead_letter", work, {"letter": letter}))
        return self._future()


def make_work(tracker: PartitionTracker, offset: int) -> Work:
    value = b'{"account_id":"1","agent_id":"7","event_type":"LOGIN"}'
    source = SourceRecord(tracker.topic, tracker.partition, offset, b"1:7", value, None)
    event = decode_event(value, EventKind.AGENT, (tracker.topic, tracker.partition, offset))
    tracker.add(offset)
    return Work(tracker, offset, source, EventKind.AGENT, event, 0)


class Rig:
    def __init__(self) -> None:
        self.writer = FakeWriter()
        self.holds: list[bool] = []
        self.backpressure = Backpressure(100, self.holds.append)
        self.settler = Settler(
            self.writer,  # type: ignore[arg-type]
            self.backpressure,
            Handback(self.backpressure, drain_seconds=5.0),
            rewrite_delay=0.01,
        )
        self.tracker = PartitionTracker("in", 0)

    def work(self, offset: int) -> Work:
        self.backpressure.pending += 1
        return make_work(self.tracker, offset)


async def settled(rig: Rig, expected_writes: int) -> None:
    await wait_until(lambda: len(rig.writer.writes) >= expected_writes, 5)


async def test_finish_moves_the_committable_offset_at_once() -> None:
    rig = Rig()
    work = rig.work(5)
    rig.settler.settle(work, FINISH)
    assert rig.tracker.committable() == 6
    assert rig.backpressure.pending == 0
    assert rig.writer.writes == []


async def test_finish_all_finishes_each_offset_and_the_pending_count_once() -> None:
    rig = Rig()
    works = [rig.work(n) for n in range(5)]
    rig.settler.finish_all([works[1], works[0], works[3]])  # out of order: 2 unfinished
    assert rig.tracker.committable() == 2
    assert rig.backpressure.pending == 2
    rig.settler.finish_all([works[4], works[2]])
    assert rig.tracker.committable() == 5
    assert rig.backpressure.pending == 0
    assert rig.writer.writes == []


async def test_a_retry_finishes_only_once_the_broker_acknowledged_it() -> None:
    rig = Rig()
    work = rig.work(0)
    rig.settler.settle(work, Retry(2, UNAVAILABLE))
    [(what, written, kwargs)] = rig.writer.writes
    assert (what, written) == ("retry", work)
    assert kwargs["retry_number"] == 2
    assert kwargs["next_attempt"] == 3
    assert (kwargs["last_error"], kwargs["last_status"]) == ("HTTP 503", 503)
    assert rig.tracker.committable() == 0  # not acknowledged yet
    rig.writer.futures[0].set_result(None)
    await asyncio.sleep(0)
    assert rig.tracker.committable() == 1
    assert rig.backpressure.pending == 0


async def test_a_deferral_keeps_the_attempt_number() -> None:
    rig = Rig()
    rig.settler.settle(rig.work(0), Defer(1, UNAVAILABLE))
    [(_what, _work, kwargs)] = rig.writer.writes
    assert (kwargs["retry_number"], kwargs["next_attempt"]) == (0, 1)


async def test_a_retriable_write_failure_is_written_again() -> None:
    rig = Rig()
    work = rig.work(0)
    rig.settler.settle(work, Retry(1, UNAVAILABLE))
    rig.writer.futures[0].set_exception(ProduceError("broker down", retriable=True))
    await settled(rig, 2)
    assert rig.writer.writes[1][0] == "retry"
    rig.writer.futures[1].set_result(None)
    await asyncio.sleep(0)
    assert rig.tracker.committable() == 1


async def test_a_refused_retry_record_becomes_a_dead_letter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    work = rig.work(0)
    rig.settler.settle(work, Retry(2, UNAVAILABLE))
    with caplog.at_level(logging.ERROR):
        rig.writer.futures[0].set_exception(ProduceError("refused", retriable=False))
        await settled(rig, 2)
    what, _work, kwargs = rig.writer.writes[1]
    assert what == "dead_letter"
    assert kwargs["letter"] == DeadLetter("retry_not_written", 2, "refused", "HTTP 503", 503)
    assert rig.tracker.committable() == 0  # until the dead letter is acknowledged
    rig.writer.futures[1].set_result(None)
    await asyncio.sleep(0)
    assert rig.tracker.committable() == 1


TOO_LARGE = ProduceError("Message size too large", retriable=False, too_large=True)


@pytest.mark.parametrize(
    ("settlement", "expected"),
    [
        (
            Retry(1, UNAVAILABLE),
            DeadLetter("record_too_large", 1, str(TOO_LARGE), "HTTP 503", 503, omit_value=True),
        ),
        (
            Defer(3, UNAVAILABLE),
            DeadLetter("record_too_large", 2, str(TOO_LARGE), "HTTP 503", 503, omit_value=True),
        ),
        (
            DeadLetter("invalid_event", 0, "not JSON"),
            DeadLetter("record_too_large", 0, "invalid_event: not JSON", omit_value=True),
        ),
        (
            DeadLetter("permanent_status", 1, None, "HTTP 404", 404),
            DeadLetter(
                "record_too_large",
                1,
                f"permanent_status: {TOO_LARGE}",
                "HTTP 404",
                404,
                omit_value=True,
            ),
        ),
    ],
)
async def test_a_record_too_large_becomes_a_dead_letter_without_the_value(
    settlement: Any, expected: DeadLetter
) -> None:
    rig = Rig()
    rig.settler.settle(rig.work(0), settlement)
    rig.writer.futures[0].set_exception(TOO_LARGE)
    await settled(rig, 2)
    assert rig.writer.writes[1][2]["letter"] == expected
    rig.writer.futures[1].set_result(None)
    await asyncio.sleep(0)
    assert rig.tracker.committable() == 1


async def test_a_dead_letter_too_large_even_without_the_value_is_skipped() -> None:
    rig = Rig()
    rig.settler.settle(rig.work(0), DeadLetter("record_too_large", 0, omit_value=True))
    rig.writer.futures[0].set_exception(TOO_LARGE)
    await asyncio.sleep(0)
    assert len(rig.writer.writes) == 1
    assert rig.tracker.committable() == 1


async def test_a_refused_dead_letter_never_stalls_the_partition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    rig.settler.settle(rig.work(0), DeadLetter("invalid_event", 0, "not JSON"))
    with caplog.at_level(logging.ERROR):
        rig.writer.futures[0].set_exception(ProduceError("too large", retriable=False))
        await asyncio.sleep(0)
    assert rig.tracker.committable() == 1
    assert len(rig.writer.writes) == 1
    assert any("refused the dead letter" in r.getMessage() for r in caplog.records)


async def test_finishing_below_the_low_water_mark_releases_the_input() -> None:
    rig = Rig()
    works = [rig.work(n) for n in range(102)]
    rig.backpressure.check_high()
    assert rig.holds == [True]
    for work in works[:52]:
        rig.settler.settle(work, FINISH)
    assert rig.holds == [True]  # 50 pending: not below the low-water mark (50) yet
    rig.settler.settle(works[52], FINISH)
    assert rig.holds == [True, False]
