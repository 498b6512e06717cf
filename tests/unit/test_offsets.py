"""PartitionTracker: the committable offset is always the lowest unfinished one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.pipeline.offsets import PartitionTracker

# One step: consume the next offset (in progress or filtered, after a gap of 0-2 offsets
# that were compacted away or belonged to aborted transactions), or finish / abandon the
# n-th offset still in progress.
Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["add", "skip"]), st.integers(0, 2)),
        st.tuples(st.sampled_from(["done", "abandon"]), st.integers(0, 50)),
    ),
    max_size=80,
)


@given(steps)
def test_committable_is_the_lowest_unfinished_offset(script: list[Step]) -> None:
    tracker = PartitionTracker("t", 0)
    in_progress: list[int] = []  # ascending
    abandoned: list[int] = []  # will not finish here: they hold the commit back for good
    next_offset = 100
    for op, arg in script:
        if op in ("add", "skip"):
            offset = next_offset + arg
            next_offset = offset + 1
            if op == "add":
                tracker.add(offset)
                in_progress.append(offset)
            else:
                tracker.skip_through(offset)
        elif in_progress:
            offset = in_progress.pop(arg % len(in_progress))
            if op == "done":
                tracker.done(offset)
            else:
                tracker.abandon(offset)
                abandoned.append(offset)
        unfinished = in_progress + abandoned
        consumed_any = next_offset != 100
        expected = min(unfinished) if unfinished else (next_offset if consumed_any else None)
        assert tracker.committable() == expected
        assert tracker.in_flight == len(in_progress)


def test_take_commit_reports_each_new_offset_once() -> None:
    tracker = PartitionTracker("t", 0)
    assert tracker.take_commit() is None  # nothing consumed yet
    tracker.add(5)
    tracker.skip_through(6)
    tracker.add(7)
    assert tracker.take_commit() == 5
    assert tracker.take_commit() is None
    tracker.done(7)  # out of order: 5 still holds the commit back
    assert tracker.take_commit() is None
    tracker.done(5)
    assert tracker.take_commit() == 8
    tracker.skip_through(8)
    assert tracker.take_commit() == 9


# A batch's run of one partition, as intake records it: each consumed offset is added (in
# progress) or filtered, after a gap of 0-2 offsets; the filtered ones are recorded once, at
# the run's end, by skip_through(the run's last offset). Between runs, in-progress offsets
# finish in any order.
runs = st.lists(
    st.tuples(
        st.lists(st.tuples(st.booleans(), st.integers(0, 2)), max_size=12),
        st.lists(st.integers(0, 50), max_size=6),
    ),
    max_size=12,
)


@given(runs)
def test_a_run_of_filtered_offsets_is_recorded_once_at_its_end(
    script: list[tuple[list[tuple[bool, int]], list[int]]],
) -> None:
    tracker = PartitionTracker("t", 0)
    in_progress: list[int] = []
    next_offset = 100
    for run, finishing in script:
        last = None
        for added, gap in run:
            offset = next_offset + gap
            next_offset = offset + 1
            last = offset
            if added:
                tracker.add(offset)
                in_progress.append(offset)
                # what intake reads to drop a record fetched again after a seek
                assert tracker.next_offset == offset + 1
        if last is not None:
            tracker.skip_through(last)
        consumed_any = next_offset != 100
        expected = min(in_progress) if in_progress else (next_offset if consumed_any else None)
        assert tracker.committable() == expected
        assert tracker.next_offset == (next_offset if consumed_any else None)
        for n in finishing:
            if in_progress:
                tracker.done(in_progress.pop(n % len(in_progress)))
        expected = min(in_progress) if in_progress else (next_offset if consumed_any else None)
        assert tracker.committable() == expected
        assert tracker.in_flight == len(in_progress)
