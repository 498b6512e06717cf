"""The consumer thread's side, with a fake confluent consumer: commands (only owned
partitions are committed or sought; a resume tells the loop after it took effect), the
input hold under backpressure, and the commit log behind the lag metric."""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from stream_wfm.pipeline.commands import TP, Commit, Pause, Resume, Seek, execute
from stream_wfm.pipeline.commits import CommitLog
from stream_wfm.pipeline.input_hold import InputHold


class FakeConsumer:
    """Records what was done to it, in order."""

    def __init__(self, assignment: list[TP] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._assignment = [TopicPartition(t, p) for t, p in assignment or []]
        self.watermarks: dict[TP, tuple[int, int]] = {}

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        self.calls.append(("commit" if asynchronous else "commit_sync", _tpo(offsets)))
        if asynchronous:
            return None
        return [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in offsets]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", _tpo(partitions)))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", _tpo(partitions)))

    def seek(self, partition: TopicPartition) -> None:
        self.calls.append(("seek", _tpo([partition])))

    def assignment(self) -> list[TopicPartition]:
        return self._assignment

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = 1.0, cached: bool = False
    ) -> tuple[int, int]:
        return self.watermarks.get((partition.topic, partition.partition), (-1, -1))


def _tpo(parts: list[TopicPartition]) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in parts]


OWNED = {("in", 0), ("in", 1)}


def run(consumer: FakeConsumer, command: Any, sync: bool = False) -> list[Any]:
    notified: list[Any] = []
    synced: list[Any] = []
    execute(
        consumer,
        command,
        OWNED,
        notify=notified.append,
        commit_sync=(lambda parts: synced.append(_tpo(parts))) if sync else None,
    )
    return notified + synced


def test_commit_skips_partitions_no_longer_owned() -> None:
    consumer = FakeConsumer()
    run(consumer, Commit({("in", 0): 5, ("in", 7): 9, ("in", 1): 2}))
    assert consumer.calls == [("commit", [("in", 0, 5), ("in", 1, 2)])]


def test_commit_of_nothing_owned_does_nothing() -> None:
    consumer = FakeConsumer()
    run(consumer, Commit({("gone", 0): 5}))
    assert consumer.calls == []


def test_a_synchronous_commit_goes_through_commit_sync() -> None:
    consumer = FakeConsumer()
    assert run(consumer, Commit({("in", 0): 5}), sync=True) == [[("in", 0, 5)]]
    assert consumer.calls == []


def test_pause_and_seek() -> None:
    consumer = FakeConsumer()
    run(consumer, Pause((("in", 0),)))
    run(consumer, Seek(("in", 0), 42))
    run(consumer, Seek(("in", 9), 1))  # not owned: a seek would fail or move another's
    assert consumer.calls == [("pause", [("in", 0, -1001)]), ("seek", [("in", 0, 42)])]


def test_resume_notifies_the_loop_after_resuming() -> None:
    consumer = FakeConsumer()
    order: list[str] = []

    def then() -> None:
        order.append("then")

    notified = run(consumer, Resume((("in", 1),), then=then))
    assert consumer.calls == [("resume", [("in", 1, -1001)])]
    assert notified == [then]  # scheduled on the loop, not run on the consumer thread
    assert order == []
    assert run(consumer, Resume((("in", 1),))) == []


# --- input hold -----------------------------------------------------------------------


def test_an_open_input_is_fetched_as_usual() -> None:
    hold = InputHold({"in"}, hold_limit=0.05, poll=0.01)
    consumer = FakeConsumer([("in", 0)])
    assert hold.apply(consumer, OWNED, threading.Event(), lambda: None)
    assert consumer.calls == []


def test_a_long_hold_pauses_only_the_inputs_then_resumes_the_owned_ones() -> None:
    hold = InputHold({"in"}, hold_limit=0.05, poll=0.01)
    consumer = FakeConsumer([("in", 0), ("in", 1), ("retry.10s", 0)])
    between: list[int] = []
    hold.hold(True)
    assert hold.apply(consumer, OWNED, threading.Event(), lambda: between.append(1))
    assert between  # commands keep running while held
    assert consumer.calls == [("pause", [("in", 0, -1001), ("in", 1, -1001)])]
    # Still held: retry topics and group duties are fetched meanwhile, no second pause.
    assert hold.apply(consumer, OWNED, threading.Event(), lambda: None)
    assert len(consumer.calls) == 1
    hold.forget({("in", 1)})  # revoked while paused
    hold.hold(False)
    assert hold.apply(consumer, OWNED, threading.Event(), lambda: None)
    assert consumer.calls[1:] == [("resume", [("in", 0, -1001)])]


def test_partitions_assigned_during_a_long_hold_wait_too() -> None:
    hold = InputHold({"in"}, hold_limit=0.01, poll=0.01)
    consumer = FakeConsumer([("in", 0)])
    hold.hold(True)
    hold.apply(consumer, OWNED, threading.Event(), lambda: None)
    hold.assigned(consumer, [TopicPartition("in", 1), TopicPartition("retry.10s", 1)])
    assert consumer.calls[-1] == ("pause", [("in", 1, -1001)])


def test_stopping_ends_a_hold() -> None:
    hold = InputHold({"in"}, hold_limit=60.0, poll=0.01)
    stopping = threading.Event()
    hold.hold(True)
    assert not hold.apply(FakeConsumer(), OWNED, stopping, stopping.set)


# --- commit log -------------------------------------------------------------------------


def test_commit_results_are_recorded_and_reported() -> None:
    results: list[bool] = []
    log = CommitLog(results.append)
    log.on_commit(None, [TopicPartition("in", 0, 10)])
    log.on_commit(KafkaError(KafkaError._NO_OFFSET), [])
    log.commit_sync(FakeConsumer(), [TopicPartition("in", 1, 4)], "revoke")
    assert log.committed == {("in", 0): 10, ("in", 1): 4}
    assert results == [True, False, True]
    log.forget([("in", 0)])
    assert log.committed == {("in", 1): 4}


def test_lag_is_the_end_offset_seen_minus_the_committed_one() -> None:
    log = CommitLog()
    consumer = FakeConsumer()
    consumer.watermarks = {("in", 0): (0, 100), ("in", 1): (20, 30), ("in", 2): (-1, -1)}
    log.on_commit(None, [TopicPartition("in", 0, 90)])
    # Never committed: lag from the low watermark; nothing fetched yet: no figure.
    assert log.lag(consumer, [("in", 0), ("in", 1), ("in", 2)]) == {("in", 0): 10, ("in", 1): 10}
