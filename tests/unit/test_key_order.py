"""Per-key order (docs/contract.md §11): :class:`KeyOrder` against a plain model, and the
submit-side check that defers an event behind an earlier one of its key."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.outcome import DEFERRALS
from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.events import EventKind, decode_event
from stream_wfm.health.breaker import BreakerPolicy
from stream_wfm.health.endpoints import Endpoints
from stream_wfm.integrations.model import validate_config
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.attempts import Attempts
from stream_wfm.pipeline.backpressure import Backpressure
from stream_wfm.pipeline.fair_share import FairShare
from stream_wfm.pipeline.lanes import Job
from stream_wfm.pipeline.offsets import PartitionTracker
from stream_wfm.pipeline.order import STALE_MS, KeyOrder
from stream_wfm.pipeline.order_spill import SpilledKeys
from stream_wfm.pipeline.settle import Defer, Settlement
from stream_wfm.pipeline.submit import FOLLOW_DELAY_MS, Submitter
from stream_wfm.pipeline.work import Work
from stream_wfm.retry.records import SourceRecord

TOPIC = "agent-events"

# --- KeyOrder against a model -------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["wait", "done", "ahead", "leave", "forget"]),
        st.integers(0, 1),  # partition
        st.sampled_from(["a", "b"]),  # key
        st.integers(0, 6),  # offset
        st.integers(0, 2),  # tier
        st.integers(0, 100),  # due (ms)
    ),
    max_size=60,
)


@pytest.mark.parametrize(
    "max_keys", [0, 1, 100_000], ids=["all spilled", "one in memory", "in memory"]
)
@given(ops=operations)
def test_key_order_matches_a_model(
    max_keys: int,
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[str, int, str, int, int, int]],
) -> None:
    """The model: the waiting events (partition, key, offset) with the due time each was
    last written with. An event may go when no lower offset of its key in its partition
    waits; when it may not, it is sent where it comes back after every waiting one of its
    key (due no earlier than any). Keys over ``max_keys`` are spilled to a file."""
    spill = SpilledKeys(str(tmp_path_factory.mktemp("spill")))
    order = KeyOrder(max_keys, spill)
    waiting: dict[tuple[int, str, int], tuple[int, int]] = {}
    for op, partition, key, offset, tier, due in ops:
        tp = (TOPIC, partition)
        if op == "wait":
            order.wait(tp, key, offset, tier, due)
            waiting[partition, key, offset] = (tier, due)
        elif op == "done":
            order.done(tp, key, offset)
            waiting.pop((partition, key, offset), None)
        elif op == "forget":
            order.forget([tp])
            waiting = {w: d for w, d in waiting.items() if w[0] != partition}
        else:  # ahead, or leave: ahead, and an event that may go no longer waits
            found = order.ahead(tp, key, offset, leave=op == "leave")
            mine = [d for (p, k, o), d in waiting.items() if p == partition and k == key]
            earlier = any(p == partition and k == key and o < offset for p, k, o in waiting)
            assert (found is not None) == earlier
            if found is not None:
                assert found.due_ms >= max(due for _tier, due in mine)
            elif op == "leave":
                waiting.pop((partition, key, offset), None)
        assert order.waiting_events == len(waiting)
        assert order.active == bool(waiting)
        assert order.waiting_keys == len({(p, k) for p, k, _ in waiting})
        assert order.spilled_events <= len(waiting)
    order.close()
    assert not spill.events


def test_a_key_whose_records_are_long_overdue_is_let_go() -> None:
    order = KeyOrder()
    order.wait((TOPIC, 0), "a", 5, 0, 1_000)
    assert order.ahead((TOPIC, 0), "a", 6, 1_000 + STALE_MS) is not None
    assert order.ahead((TOPIC, 0), "a", 6, 1_001 + STALE_MS) is None
    assert not order.active


# --- the submit-side check ----------------------------------------------------------------


class Settled:
    def __init__(self) -> None:
        self.settled: list[tuple[Work, Settlement]] = []

    def settle(self, work: Work, settlement: Settlement) -> None:
        self.settled.append((work, settlement))

    def finish(self, work: Work) -> None:
        raise AssertionError("nothing is finished here")


class Store:
    def __init__(self) -> None:
        self.entry = TemplatedEntry(
            validate_config(
                {"account_id": "1", "send_all_agent_states": True,
                 "agent_event_url": "http://127.0.0.1:9/hook"}
            )
        )  # fmt: skip

    def get(self, account_id: str) -> TemplatedEntry | None:
        return self.entry


class Jobs:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def take_followers(self, job: Job, same: Any) -> list[Job]:
        return []


class SubmitRig:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.order = KeyOrder()
        self.settler = Settled()
        self.jobs = Jobs()
        store = Store()
        self.store = store
        metrics = Metrics(CollectorRegistry())
        endpoints = Endpoints(BreakerPolicy(), metrics, lambda: self.now)
        attempts = Attempts(
            store=store,  # type: ignore[arg-type]
            settler=self.settler,  # type: ignore[arg-type]
            endpoints=endpoints,
            order=self.order,
            metrics=metrics,
            clock=lambda: self.now,
        )
        self.submitter = Submitter(
            store=store,  # type: ignore[arg-type]
            dispatcher=self.jobs,  # type: ignore[arg-type]
            endpoints=endpoints,
            fair_share=FairShare(
                self.jobs,  # type: ignore[arg-type]
                Backpressure(1000, lambda held: None),
                endpoints,
                1000,
                time.perf_counter,
            ),
            order=self.order,
            attempts=attempts,
            settler=self.settler,  # type: ignore[arg-type]
            metrics=metrics,
            clock=lambda: self.now,
        )
        self.tracker = PartitionTracker(TOPIC, 0)

    def work(self, offset: int, agent: str = "7", partition: int = 0) -> Work:
        value = orjson.dumps(
            {"account_id": "1", "agent_id": agent, "event_type": "AVAILABLE",
             "event_id": f"e-{offset}"}
        )  # fmt: skip
        self.tracker.add(offset)
        event = decode_event(value, EventKind.AGENT, (TOPIC, partition, offset))
        source = SourceRecord(TOPIC, partition, offset, None, value, None)
        return Work(self.tracker, offset, source, EventKind.AGENT, event, 0)

    def submit(self, work: Work, attempt: int = 1) -> None:
        self.submitter.submit(work, self.store.entry, attempt)

    def sent(self) -> list[int]:
        return [job.context.source.offset for job in self.jobs.jobs]


def test_an_event_behind_a_waiting_one_of_its_key_is_deferred_after_it() -> None:
    rig = SubmitRig()
    due_ms = int(rig.now * 1000) + 5_000
    rig.order.wait((TOPIC, 0), "1:7", 3, 0, due_ms)
    later = rig.work(4)
    rig.submit(later)
    assert rig.sent() == []
    assert rig.settler.settled == [(later, Defer(1, DEFERRALS["order"], (0, due_ms)))]


def test_a_due_retry_retried_again_spends_no_retry_when_deferred_behind_an_earlier_one() -> None:
    rig = SubmitRig()
    due_ms = int(rig.now * 1000) + 5_000
    rig.order.wait((TOPIC, 0), "1:7", 3, 1, due_ms)
    rig.order.wait((TOPIC, 0), "1:7", 4, 1, due_ms)
    retry = rig.work(4)
    rig.submitter.resubmit(retry, 3)
    assert rig.settler.settled == [(retry, Defer(3, DEFERRALS["order"], (1, due_ms)))]


def test_behind_a_record_already_due_it_waits_at_least_the_follow_delay() -> None:
    rig = SubmitRig()
    due_ms = int(rig.now * 1000) - 100  # its record came back: it is being attempted
    rig.order.wait((TOPIC, 0), "1:7", 3, 0, due_ms)
    later = rig.work(4)
    rig.submit(later)
    [(_, settlement)] = rig.settler.settled
    assert isinstance(settlement, Defer)
    assert settlement.to == (0, int(rig.now * 1000) + FOLLOW_DELAY_MS)


def test_other_keys_earlier_offsets_and_other_partitions_are_not_held() -> None:
    rig = SubmitRig()
    rig.order.wait((TOPIC, 0), "1:7", 3, 0, int(rig.now * 1000) + 5_000)
    rig.submit(rig.work(4, agent="8"))  # another agent
    rig.submit(rig.work(2))  # came before the waiting one
    rig.submit(rig.work(5, partition=1))  # another input partition
    assert rig.sent() == [4, 2, 5]
    assert rig.settler.settled == []


def test_a_waiting_event_that_comes_back_goes_and_its_key_no_longer_waits() -> None:
    rig = SubmitRig()
    rig.order.wait((TOPIC, 0), "1:7", 3, 0, int(rig.now * 1000))
    rig.submitter.resubmit(rig.work(3), 2)
    assert rig.sent() == [3]
    assert not rig.order.active
    rig.submit(rig.work(4))  # queues behind it in its lane
    assert rig.sent() == [3, 4]


class FullDisk(SpilledKeys):
    def wait(self, tp: Any, key: str, offset: int, tier: int, due_ms: int) -> None:
        raise sqlite3.OperationalError("database or disk is full")


def test_a_key_that_cannot_be_spilled_is_kept_in_memory(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    order = KeyOrder(0, FullDisk(str(tmp_path)))
    order.wait((TOPIC, 0), "a", 3, 0, 1_000)
    assert order.waiting_events == 1
    assert order.spilled_events == 0
    assert order.ahead((TOPIC, 0), "a", 4) is not None
    assert "could not spill a waiting key" in caplog.text


def test_the_spill_file_is_removed_at_close(tmp_path: Any) -> None:
    order = KeyOrder(0, SpilledKeys(str(tmp_path)))
    order.wait((TOPIC, 0), "a", 3, 0, 1_000)
    assert order.spilled_events == 1
    assert [p.name for p in tmp_path.glob("*/*")] == ["waiting.sqlite3"]
    order.close()
    order.close()
    assert list(tmp_path.iterdir()) == []
