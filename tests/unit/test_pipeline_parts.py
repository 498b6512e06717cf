"""The loop-side pipeline parts with fakes around them: intake (skip, filter,
dead-letter, submit, hand retry records on), the retry gate (due, held, paused and
resumed by commands) and the hand-back of revoked partitions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import (
    DEFERRAL_REASONS,
    DEFERRALS,
    Outcome,
    classify_status,
    connection_error_outcome,
)
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind, decode_event
from stream_wfm.health.breaker import Admission, BreakerPolicy
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.integrations.model import validate_config
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.attempts import PROBE_MARGIN, Attempts
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.commands import Command, Pause, Resume, Seek
from stream_wfm.pipeline.fair_share import FairShare
from stream_wfm.pipeline.handback import Handback
from stream_wfm.pipeline.intake import Intake
from stream_wfm.pipeline.lanes import Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.order import KeyOrder
from stream_wfm.pipeline.retry_gate import RetryGate
from stream_wfm.pipeline.settle import Defer, Retry, Settlement, after_attempt
from stream_wfm.pipeline.submit import Submitter
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import RetryRecord, SourceRecord, encode_retry_record
from stream_wfm.retry.writer import DeadLetter
from tests.helpers.waiting import wait_until

AGENT, CALL, RETRY = "in.agent", "in.call", "retry.10s"


@dataclass(frozen=True)
class Selected:
    """An integration that sends logins only (routing's ``Selection``)."""

    enabled: bool = True
    has_agent_url: bool = True
    has_call_url: bool = False
    agent_states: bool = False
    send_all_agent_states: bool = False
    agent_login_events: bool = True
    agent_logout_events: bool = False
    end_call_events: bool = False


class FakeStore:
    def get(self, account_id: str) -> Selected | None:
        return Selected() if account_id == "1" else None


class FakeSettler:
    def __init__(self) -> None:
        self.settled: list[tuple[Work, Settlement]] = []
        self.finished: list[Work] = []

    def settle(self, work: Work, settlement: Settlement) -> None:
        self.settled.append((work, settlement))

    def finish(self, work: Work) -> None:
        self.finished.append(work)

    def finish_all(self, works: list[Work]) -> None:
        self.finished.extend(works)


class FakeSubmitter:
    def __init__(self) -> None:
        self.submitted: list[tuple[Work, int]] = []
        self.resubmitted: list[tuple[Work, int]] = []

    def submit(self, work: Work, entry: Any, attempt: int) -> None:
        self.submitted.append((work, attempt))

    def resubmit(self, work: Work, attempt: int) -> None:
        self.resubmitted.append((work, attempt))


class FakeGate:
    def __init__(self) -> None:
        self.waiting: dict[Any, Any] = {}
        self.offered: list[int] = []

    def offer(self, msg: Message, tracker: PartitionTracker, offset: int) -> None:
        self.offered.append(offset)


def message(
    topic: str,
    offset: int,
    value: Any,
    partition: int = 0,
    headers: list[tuple[str, bytes | None]] | None = None,
) -> Message:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return Message(
        topic=topic, partition=partition, offset=offset, key=b"k", value=raw,
        timestamp=(1, 1_700_000_000_000),
        headers=headers,  # type: ignore[arg-type]  # bytes or None values are fine
    )  # fmt: skip


def login(agent: str = "7", account: str = "1", **more: Any) -> dict[str, Any]:
    return {"account_id": account, "agent_id": agent, "event_type": "LOGIN", **more}


class IntakeRig:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.trackers = {(t, 0): PartitionTracker(t, 0) for t in (AGENT, CALL, RETRY)}
        self.gate = FakeGate()
        self.submitter = FakeSubmitter()
        self.settler = FakeSettler()
        self.backpressure = Backpressure(1000, lambda held: None)
        self.intake = Intake(
            store=FakeStore(),  # type: ignore[arg-type]
            trackers=self.trackers,
            gate=self.gate,  # type: ignore[arg-type]
            submitter=self.submitter,  # type: ignore[arg-type]
            settler=self.settler,  # type: ignore[arg-type]
            backpressure=self.backpressure,
            metrics=Metrics(self.registry),
            topic_kinds={AGENT: EventKind.AGENT, CALL: EventKind.CALL},
            retry_topics={RETRY},
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def test_a_selected_event_is_submitted_as_its_first_attempt() -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(AGENT, 3, login(event_id="e-1"))])
    [(work, attempt)] = rig.submitter.submitted
    assert attempt == 1
    assert work.event is not None
    assert work.event.event_id == "e-1"
    assert (work.source.topic, work.source.offset, work.source.timestamp_ms) == (
        AGENT, 3, 1_700_000_000_000,
    )  # fmt: skip
    assert rig.backpressure.pending == 1
    assert rig.trackers[(AGENT, 0)].committable() == 3  # in progress
    assert rig.metric("stream_wfm_events_consumed_total", topic=AGENT) == 1


def test_a_filtered_event_finishes_at_once_and_is_counted_by_reason() -> None:
    rig = IntakeRig()
    logout = {**login(), "event_type": "LOGOUT"}
    rig.intake.on_batch([message(AGENT, 0, logout), message(AGENT, 1, login(account="9"))])
    assert rig.submitter.submitted == []
    assert rig.backpressure.pending == 0
    assert rig.trackers[(AGENT, 0)].committable() == 2
    assert rig.metric("stream_wfm_events_filtered_total", reason="logout_not_selected") == 1
    assert rig.metric("stream_wfm_events_filtered_total", reason="no_integration") == 1


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"not json", "not valid JSON (error at position 0)"),
        (b"[1]", "not a JSON object"),
        ({"account_id": "1", "event_type": "LOGIN"}, "missing required field agent_id"),
    ],
)
def test_an_invalid_event_is_dead_lettered_and_processing_goes_on(value: Any, detail: str) -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(AGENT, 0, value), message(AGENT, 1, login())])
    [(work, settlement)] = rig.settler.settled
    assert settlement == DeadLetter("invalid_event", 0, detail)
    assert (work.kind, work.event, work.event_id) == (EventKind.AGENT, None, f"{AGENT}:0:0")
    assert len(rig.submitter.submitted) == 1
    assert rig.metric("stream_wfm_events_invalid_total", topic=AGENT) == 1


def test_records_of_revoked_waiting_or_already_seen_partitions_are_skipped() -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(AGENT, 5, login())])
    del rig.trackers[(CALL, 0)]
    rig.gate.waiting[(RETRY, 0)] = None
    rig.intake.on_batch(
        [
            message(AGENT, 4, login()),  # fetched again after a seek
            message(CALL, 0, {"account_id": "1", "event_type": "ACD-CALL", "call_id": "c"}),
            message(RETRY, 0, b"{}"),
        ]
    )
    assert len(rig.submitter.submitted) == 1
    assert rig.gate.offered == []


def test_runs_of_partitions_mixing_filtered_selected_and_invalid_records() -> None:
    # intake reads a partition's tracker once per run and records a run's filtered offsets
    # once, at its end: the outcome is the same as record by record.
    rig = IntakeRig()
    rig.trackers[(AGENT, 1)] = PartitionTracker(AGENT, 1)
    logout = {**login(), "event_type": "LOGOUT"}
    rig.intake.on_batch(
        [
            message(AGENT, 0, logout),
            message(AGENT, 1, login()),  # selected: in progress
            message(AGENT, 2, logout),
            message(AGENT, 3, login(account="9")),  # another reason
            message(AGENT, 0, logout, partition=1),
            message(AGENT, 1, b"not json", partition=1),  # dead-lettered: in progress
            message(AGENT, 2, logout, partition=1),
            message(AGENT, 3, logout, partition=1),
            message(AGENT, 4, logout),  # partition 0 again
            message(AGENT, 2, login()),  # fetched again after a seek: dropped
            message(RETRY, 8, b"whatever"),
        ]
    )
    assert [work.offset for work, _ in rig.submitter.submitted] == [1]
    assert [work.offset for work, _ in rig.settler.settled] == [1]
    assert rig.gate.offered == [8]
    p0, p1 = rig.trackers[(AGENT, 0)], rig.trackers[(AGENT, 1)]
    assert (p0.committable(), p0.next_offset, p0.in_flight) == (1, 5, 1)
    assert (p1.committable(), p1.next_offset, p1.in_flight) == (1, 4, 1)
    p0.done(1)
    p1.done(1)
    assert (p0.committable(), p1.committable()) == (5, 4)
    assert rig.metric("stream_wfm_events_consumed_total", topic=AGENT) == 9
    assert rig.metric("stream_wfm_events_consumed_total", topic=RETRY) == 1
    assert rig.metric("stream_wfm_events_filtered_total", reason="logout_not_selected") == 6
    assert rig.metric("stream_wfm_events_filtered_total", reason="no_integration") == 1


def test_retry_topic_records_go_to_the_gate() -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(RETRY, 8, b"whatever")])
    assert rig.gate.offered == [8]
    assert rig.submitter.submitted == []


# --- the retry gate -------------------------------------------------------------------


class GateRig:
    def __init__(self, now: float) -> None:
        self.now = now
        self.commands: list[Command] = []
        self.submitter = FakeSubmitter()
        self.settler = FakeSettler()
        self.backpressure = Backpressure(1000, lambda held: None)
        self.registry = CollectorRegistry()
        self.gate = RetryGate(
            submitter=self.submitter,  # type: ignore[arg-type]
            settler=self.settler,  # type: ignore[arg-type]
            backpressure=self.backpressure,
            handback=Handback(self.backpressure, 5.0),
            metrics=Metrics(self.registry),
            post=self.commands.append,
            clock=lambda: self.now,
        )
        self.tracker = PartitionTracker(RETRY, 0)

    def offer(
        self,
        offset: int,
        due_in: float,
        attempt: int = 2,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        value = orjson.dumps(login(event_id=f"e-{offset}"))
        record = RetryRecord(
            source=SourceRecord(AGENT, 0, offset, b"1:7", value, None, headers=headers),
            account_id="1",
            event_id=f"e-{offset}",
            kind=EventKind.AGENT,
            attempt=attempt,
            due_at_ms=int((self.now + due_in) * 1000),
            last_error="HTTP 503",
            last_status=503,
            first_attempt_at_ms=int(self.now * 1000) - 10_000,
        )
        self.gate.offer(message(RETRY, offset, encode_retry_record(record)), self.tracker, offset)

    def paused(self) -> float:
        labels = {"reason": "retry_not_due"}
        return self.registry.get_sample_value("stream_wfm_paused_partitions", labels) or 0.0


async def test_a_due_retry_is_resubmitted_with_its_attempt_number() -> None:
    rig = GateRig(time.time())
    rig.offer(4, due_in=-1.0, attempt=3)
    [(work, attempt)] = rig.submitter.resubmitted
    assert attempt == 3
    assert work.event is not None
    assert work.event.event_id == "e-4"
    assert (work.tracker, work.offset, work.source.offset) == (rig.tracker, 4, 4)
    assert rig.commands == []


async def test_a_retry_due_within_the_hold_window_waits_in_memory() -> None:
    rig = GateRig(time.time())
    rig.offer(0, due_in=0.05)
    assert rig.submitter.resubmitted == []
    assert rig.commands == []
    await wait_until(lambda: bool(rig.submitter.resubmitted), 5)


async def test_a_later_retry_pauses_and_seeks_its_partition_then_resumes_it() -> None:
    rig = GateRig(time.time())
    rig.offer(7, due_in=0.8)  # resumed RESUME_EARLY (0.3 s) before due: in ~0.5 s
    tp = (RETRY, 0)
    assert rig.commands == [Pause((tp,)), Seek(tp, 7)]
    assert tp in rig.gate.waiting
    assert rig.paused() == 1
    assert rig.submitter.resubmitted == []
    await wait_until(lambda: len(rig.commands) >= 3, 5)
    resume = rig.commands[2]
    assert isinstance(resume, Resume)
    assert resume.partitions == (tp,)
    assert tp in rig.gate.waiting  # records fetched before the resume are still ignored
    assert resume.then is not None
    resume.then()  # the consumer thread resumed the partition
    assert tp not in rig.gate.waiting
    assert rig.paused() == 0


async def test_revoking_a_waiting_partition_cancels_its_timer() -> None:
    rig = GateRig(time.time())
    rig.offer(7, due_in=60)
    timer = rig.gate.waiting[(RETRY, 0)]
    rig.gate.forget((RETRY, 0))
    assert timer is not None
    assert timer.cancelled()
    assert rig.gate.waiting == {}
    assert rig.paused() == 0


async def test_an_unreadable_retry_record_is_dead_lettered_with_no_kind() -> None:
    rig = GateRig(time.time())
    rig.gate.offer(message(RETRY, 2, b'{"schema": "nope"}'), rig.tracker, 2)
    [(work, settlement)] = rig.settler.settled
    assert isinstance(settlement, DeadLetter)
    assert settlement.reason == "invalid_retry_record"
    assert work.kind is None
    assert work.event_id == f"{RETRY}:0:2"
    assert rig.backpressure.pending == 1


async def test_held_retries_go_on_in_partition_order_whatever_their_due_times() -> None:
    """A key's records come back in the order they were written (docs/contract.md §11):
    records held until due leave in partition order, even when a later one is due a
    little earlier (its due time computed a moment later) or is due already."""
    rig = GateRig(time.time())
    for offset in range(20):
        rig.offer(offset, due_in=0.05 - offset * 0.001)
    rig.offer(20, due_in=-1.0)  # due already: still behind the ones held before it
    await wait_until(lambda: len(rig.submitter.resubmitted) == 21, 5)
    assert [work.offset for work, _attempt in rig.submitter.resubmitted] == list(range(21))


async def test_a_retry_due_after_a_revoke_is_left_to_the_next_owner() -> None:
    rig = GateRig(time.time())
    rig.offer(0, due_in=0.05)
    rig.tracker.revoked = True
    await wait_until(lambda: rig.tracker.in_flight == 0, 5)
    assert rig.submitter.resubmitted == []
    assert rig.tracker.committable() == 0  # uncommitted: the next owner delivers it
    assert rig.backpressure.pending == 0


# --- hand-back of revoked partitions ----------------------------------------------------


class FakeDispatcher:
    def __init__(self, queued: list[Job]) -> None:
        self.queued = queued

    def discard(self, drop: Any) -> list[Job]:
        dropped = [job for job in self.queued if drop(job)]
        self.queued = [job for job in self.queued if not drop(job)]
        return dropped


def work_at(tracker: PartitionTracker, offset: int) -> Work:
    tracker.add(offset)
    source = SourceRecord(tracker.topic, tracker.partition, offset, None, b"{}", None)
    return Work(tracker, offset, source, EventKind.AGENT, None, 0)


async def test_a_hand_back_waits_for_in_flight_events_then_gives_their_offsets() -> None:
    backpressure = Backpressure(1000, lambda held: None)
    handback = Handback(backpressure, drain_seconds=60.0)
    tracker = PartitionTracker(AGENT, 0)
    works = [work_at(tracker, n) for n in range(3)]
    tracker.revoked = True
    future = handback.start([tracker], FakeDispatcher([]))  # type: ignore[arg-type]
    assert not future.done()
    for work in works:
        tracker.done(work.offset)
        handback.check()
    assert future.result(timeout=0) == {(AGENT, 0): 3}


async def test_past_the_drain_deadline_queued_events_are_handed_back_undelivered() -> None:
    backpressure = Backpressure(1000, lambda held: None)
    backpressure.pending = 3
    handback = Handback(backpressure, drain_seconds=0.05)
    mine, other = PartitionTracker(AGENT, 0), PartitionTracker(AGENT, 1)
    in_flight = work_at(mine, 0)
    queued = [Job(None, "k", 1, work_at(mine, 1)), Job(None, "k", 1, work_at(other, 0))]  # type: ignore[arg-type]
    dispatcher = FakeDispatcher(queued)
    mine.revoked = True
    future = handback.start([mine], dispatcher)  # type: ignore[arg-type]
    await wait_until(lambda: len(dispatcher.queued) != 2, 5)
    assert [job.context.tracker for job in dispatcher.queued] == [other]
    assert backpressure.pending == 2
    assert not future.done()  # the request under way is still waited for
    mine.done(in_flight.offset)
    handback.check()
    assert future.result(timeout=0) == {(AGENT, 0): 1}  # offset 1 is handed back


async def test_closing_answers_every_hand_back_with_what_is_finished() -> None:
    handback = Handback(Backpressure(1000, lambda held: None), drain_seconds=60.0)
    tracker = PartitionTracker(AGENT, 0)
    work_at(tracker, 0)
    tracker.revoked = True
    future = handback.start([tracker], FakeDispatcher([]))  # type: ignore[arg-type]
    handback.close()
    assert future.result(timeout=0) == {(AGENT, 0): 0}


# --- the input record's headers and trace context ------------------------------------

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADERS: list[tuple[str, bytes | None]] = [
    ("traceparent", TRACEPARENT),
    ("tracestate", b"congo=t61rcWkgMzE"),
    ("bin", b"\xff"),
    ("null", None),
]


def test_intake_keeps_the_input_headers_of_a_selected_event() -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(AGENT, 3, login(), headers=HEADERS), message(AGENT, 4, login())])
    [(work, _), (plain, _)] = rig.submitter.submitted
    assert work.source.headers == HEADERS
    assert plain.source.headers is None


def test_intake_keeps_the_input_headers_of_an_invalid_event() -> None:
    rig = IntakeRig()
    rig.intake.on_batch([message(AGENT, 0, b"not json", headers=HEADERS)])
    [(work, settlement)] = rig.settler.settled
    assert isinstance(settlement, DeadLetter)
    assert work.source.headers == HEADERS


def test_intake_reads_a_schema_registry_framed_value() -> None:
    rig = IntakeRig()
    framed = b"\x00\x00\x00\x01\x07" + orjson.dumps(login(event_id="e-framed"))
    rig.intake.on_batch([message(AGENT, 0, framed)])
    [(work, _)] = rig.submitter.submitted
    assert work.event is not None
    assert work.event.event_id == "e-framed"
    assert work.source.value == framed  # kept as it was, framing included


async def test_a_due_retry_keeps_the_headers_of_its_input_record() -> None:
    rig = GateRig(time.time())
    rig.offer(4, due_in=-1.0, headers=HEADERS)
    [(work, _)] = rig.submitter.resubmitted
    assert work.source.headers == HEADERS


async def test_an_unreadable_retry_record_keeps_its_own_headers() -> None:
    rig = GateRig(time.time())
    rig.gate.offer(message(RETRY, 2, b"garbage", headers=[("h", b"1")]), rig.tracker, 2)
    [(work, _)] = rig.settler.settled
    assert work.source.headers == [("h", b"1")]


class RecordingDispatcher:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)


class TemplatedStore:
    def __init__(self, **config: Any) -> None:
        self.entry = TemplatedEntry(
            validate_config(
                {"account_id": "1", "agent_login_events": True,
                 "agent_event_url": "http://127.0.0.1:9/hook", **config}
            )
        )  # fmt: skip

    def get(self, account_id: str) -> TemplatedEntry | None:
        return self.entry if account_id == "1" else None


def submitted_headers(
    kafka_headers: list[tuple[str, bytes | None]] | None, retry: bool = False, **config: Any
) -> tuple[tuple[str, str], ...]:
    """The headers of the request submitted for an event whose input record had
    ``kafka_headers`` (as a first attempt, or as a due retry)."""
    store = TemplatedStore(**config)
    dispatcher = RecordingDispatcher()
    metrics = Metrics(CollectorRegistry())
    endpoints = Endpoints(BreakerPolicy(), metrics, time.time)
    submitter = Submitter(
        store=store,  # type: ignore[arg-type]
        dispatcher=dispatcher,  # type: ignore[arg-type]
        endpoints=endpoints,
        fair_share=FairShare(
            dispatcher,  # type: ignore[arg-type]
            Backpressure(1000, lambda held: None),
            endpoints,
            1000,
            time.perf_counter,
        ),
        order=KeyOrder(),
        attempts=None,  # type: ignore[arg-type]  # nothing is deferred
        settler=FakeSettler(),  # type: ignore[arg-type]
        metrics=metrics,
        clock=time.time,
    )
    value = orjson.dumps(login(event_id="e-1"))
    tracker = PartitionTracker(AGENT, 0)
    tracker.add(0)
    event = decode_event(value, EventKind.AGENT, (AGENT, 0, 0))
    work = Work(tracker, 0, SourceRecord(AGENT, 0, 0, None, value, None, headers=kafka_headers),
                EventKind.AGENT, event, 0)  # fmt: skip
    if retry:
        submitter.resubmit(work, 2)
    else:
        submitter.submit(work, store.entry, 1)
    [job] = dispatcher.jobs
    return job.request.headers


@pytest.mark.parametrize("retry", [False, True])
def test_the_input_traceparent_and_tracestate_go_on_every_attempt(retry: bool) -> None:
    headers = submitted_headers(HEADERS, retry=retry)
    assert headers[-3:] == (
        ("X-WFM-Event-Id", "e-1"),
        ("traceparent", TRACEPARENT.decode()),
        ("tracestate", "congo=t61rcWkgMzE"),
    )


@pytest.mark.parametrize(
    "headers", [None, [], [("bin", b"\xff")], [("traceparent", b"00-not-a-traceparent")]]
)
def test_no_trace_headers_without_a_valid_traceparent(
    headers: list[tuple[str, bytes | None]] | None,
) -> None:
    assert submitted_headers(headers)[-1] == ("X-WFM-Event-Id", "e-1")
    assert all(name.lower() not in ("traceparent", "tracestate")
               for name, _ in submitted_headers(headers))  # fmt: skip


def test_a_configured_traceparent_is_the_one_sent() -> None:
    configured = "00-11111111111111111111111111111111-2222222222222222-00"
    headers = submitted_headers(HEADERS, headers={"traceparent": configured})
    assert [(n, v) for n, v in headers if n.lower() in ("traceparent", "tracestate")] == [
        ("traceparent", configured)
    ]


# --- after an attempt: the breaker's probe, and deferrals -------------------------------


class AttemptsRig:
    def __init__(self, max_retries: int = 3) -> None:
        self.now = 1_800_000_000.0
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.settler = FakeSettler()
        self.endpoints = Endpoints(BreakerPolicy(), metrics, lambda: self.now)
        self.attempts = Attempts(
            store=TemplatedStore(max_retries=max_retries),  # type: ignore[arg-type]
            settler=self.settler,  # type: ignore[arg-type]
            endpoints=self.endpoints,
            order=KeyOrder(),
            metrics=metrics,
            clock=lambda: self.now,
        )
        self.tracker = PartitionTracker(AGENT, 0)
        self.offsets = iter(range(1000))

    def work(self) -> Work:
        offset = next(self.offsets)
        value = orjson.dumps(login(event_id=f"e-{offset}"))
        self.tracker.add(offset)
        event = decode_event(value, EventKind.AGENT, (AGENT, 0, offset))
        source = SourceRecord(AGENT, 0, offset, None, value, None)
        return Work(self.tracker, offset, source, EventKind.AGENT, event, 0)

    def job(self, attempt: int, probe: bool = False) -> Job:
        work = self.work()
        assert work.event is not None
        host = "http://127.0.0.1:9"
        request = WebhookRequest("POST", f"{host}/hook", (), b"", 5.0, host, work.event.event_id)
        return Job(request, work.event.order_key, attempt, work, probe)

    def half_open(self) -> None:
        """Ten 503 answers open account 1's agent endpoint; 30 s later it sends a probe."""
        for _ in range(10):
            assert self.endpoints.admit("1", EventKind.AGENT, None) is Admission.SEND
            self.endpoints.record("1", EventKind.AGENT, classify_status(503), probe=False)
        self.now += 30
        assert self.endpoints.admit("1", EventKind.AGENT, None) is Admission.PROBE

    def state(self) -> str:
        endpoint = self.endpoints.get("1", EventKind.AGENT)
        assert endpoint is not None
        return endpoint.breaker.state

    def deferred(self, reason: str) -> float:
        labels = {"reason": reason}
        return self.registry.get_sample_value("stream_wfm_events_deferred_total", labels) or 0.0

    def deferred_5m(self) -> int:
        endpoint = self.endpoints.get("1", EventKind.AGENT)
        assert endpoint is not None
        return endpoint.report(self.now).deferred_5m


@pytest.mark.parametrize(
    "outcome",
    [
        classify_status(503),
        classify_status(429),
        classify_status(503, retry_after="120"),
        connection_error_outcome(ConnectionRefusedError("refused")),
    ],
    ids=["503", "429", "503 with Retry-After", "connection refused"],
)
def test_a_probe_answered_retryably_is_deferred_without_spending_a_retry(outcome: Outcome) -> None:
    rig = AttemptsRig()
    rig.half_open()
    job = rig.job(attempt=3, probe=True)
    rig.attempts.on_outcome(job, outcome, 0.1)
    # open again for twice as long (60 s): back 1 s after the next probe may go
    deferral = replace(DEFERRALS["circuit_open"], retry_after=60 + PROBE_MARGIN)
    assert rig.settler.settled == [(job.context, Defer(3, deferral))]
    assert rig.settler.finished == []
    assert rig.deferred("circuit_open") == 1
    assert rig.deferred_5m() == 1
    assert rig.state() == "open"  # for twice as long


def test_a_probe_answered_2xx_closes_the_breaker_and_finishes() -> None:
    rig = AttemptsRig()
    rig.half_open()
    job = rig.job(attempt=2, probe=True)
    rig.attempts.on_outcome(job, classify_status(200), 0.1)
    assert rig.settler.finished == [job.context]
    assert rig.settler.settled == []
    assert rig.state() == "closed"
    assert rig.deferred("circuit_open") == 0


async def test_delivered_events_are_finished_and_counted_at_the_end_of_the_loop_turn() -> None:
    rig = AttemptsRig()
    jobs = [rig.job(attempt=1) for _ in range(3)]
    for job in jobs:
        rig.attempts.on_outcome(job, classify_status(200), 0.1)
    assert rig.settler.finished == []  # not yet: once per loop turn
    await asyncio.sleep(0)
    assert rig.settler.finished == [job.context for job in jobs]
    labels = {"kind": "agent", "outcome": "delivered", "status_class": "2xx"}
    assert rig.registry.get_sample_value("stream_wfm_deliveries_total", labels) == 3


def test_a_probe_answered_permanently_closes_the_breaker_and_is_dead_lettered() -> None:
    rig = AttemptsRig()
    rig.half_open()
    job = rig.job(attempt=2, probe=True)
    rig.attempts.on_outcome(job, classify_status(404), 0.1)
    assert rig.settler.settled == [
        (job.context, DeadLetter("permanent_status", 2, None, "HTTP 404", 404))
    ]
    assert rig.state() == "closed"
    assert rig.deferred("circuit_open") == 0


@pytest.mark.parametrize(
    ("attempt", "max_retries", "outcome", "expected"),
    [
        (1, 3, classify_status(503), Retry(1, classify_status(503))),
        (3, 3, classify_status(500), Retry(3, classify_status(500))),
        (4, 3, classify_status(503), DeadLetter("retries_exhausted", 4, None, "HTTP 503", 503)),
        (1, 0, classify_status(503), DeadLetter("retries_exhausted", 1, None, "HTTP 503", 503)),
        (4, 3, classify_status(429), Defer(4, classify_status(429))),
    ],
)
def test_an_attempt_that_is_no_probe_settles_as_the_retry_policy_says(
    attempt: int, max_retries: int, outcome: Outcome, expected: Settlement
) -> None:
    rig = AttemptsRig(max_retries=max_retries)
    rig.endpoints.admit("1", EventKind.AGENT, None)
    job = rig.job(attempt)
    rig.attempts.on_outcome(job, outcome, 0.1)
    assert expected == after_attempt(attempt, outcome, max_retries)
    assert rig.settler.settled == [(job.context, expected)]
    assert rig.deferred("circuit_open") == 0
    assert rig.deferred_5m() == 0


def test_a_retryable_answer_while_half_open_that_is_no_probe_spends_a_retry() -> None:
    rig = AttemptsRig()
    rig.half_open()
    job = rig.job(attempt=1)  # under way since before the breaker opened
    rig.attempts.on_outcome(job, classify_status(503), 0.1)
    assert rig.settler.settled == [(job.context, Retry(1, classify_status(503)))]
    assert rig.state() == "half_open"  # only the probe decides


def test_defer_counts_its_reason_and_settles_a_deferral_of_the_same_attempt() -> None:
    rig = AttemptsRig()
    rig.endpoints.admit("1", EventKind.AGENT, None)
    for n, reason in enumerate(DEFERRAL_REASONS, start=1):
        work = rig.work()
        rig.attempts.defer(work, n, reason)
        assert rig.settler.settled[-1] == (work, Defer(n, DEFERRALS[reason]))
        assert rig.deferred(reason) == 1
    assert DEFERRALS["circuit_open"].retriable
    assert rig.deferred_5m() == len(DEFERRAL_REASONS)


def test_an_open_breakers_events_come_back_when_its_next_probe_may_go() -> None:
    """Deferred by an open breaker, an event waits until the breaker lets a probe through
    (plus a second), not one first-tier delay after another; once half-open (the probe
    under way) the others wait the first tier's delay as before."""
    rig = AttemptsRig()
    for _ in range(10):  # ten 503 answers open it for 30 s
        assert rig.endpoints.admit("1", EventKind.AGENT, None) is Admission.SEND
        rig.endpoints.record("1", EventKind.AGENT, classify_status(503), probe=False)
    rig.now += 10
    work = rig.work()
    rig.attempts.defer(work, 1, "circuit_open")
    [(_, settlement)] = rig.settler.settled
    assert isinstance(settlement, Defer)
    assert settlement.outcome.retry_after == pytest.approx(20 + PROBE_MARGIN)
    rig.now += 20
    assert rig.endpoints.admit("1", EventKind.AGENT, None) is Admission.PROBE
    rig.attempts.defer(rig.work(), 1, "circuit_open")
    assert rig.settler.settled[-1][1].outcome.retry_after is None  # type: ignore[union-attr]
