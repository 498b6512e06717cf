"""Per-partition offset tracking: which offset is safe to commit.

Events of a partition finish out of order (different agents run concurrently).
:class:`PartitionTracker` records completions and exposes the lowest
unfinished offset; only that is ever committed, so a crash re-delivers every
event that had not finished (at-least-once).

Cost per event: for an event in progress, one deque append and, when it
finishes out of order, one set insertion; a batch's run of filtered events
only moves ``next_offset``, once. No object per event.
"""

from __future__ import annotations

from collections import deque


class PartitionTracker:
    """Offsets of one assigned partition, in the order they were consumed."""

    __slots__ = (
        "_abandoned",
        "_done_early",
        "_pending",
        "committed",
        "next_offset",
        "partition",
        "revoked",
        "topic",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._pending: deque[int] = deque()
        self._done_early: set[int] = set()
        self.next_offset: int | None = None  # one past the highest offset seen
        self.committed: int | None = None  # last offset handed to commit
        self.revoked = False
        self._abandoned = 0

    def add(self, offset: int) -> None:
        """Record that ``offset`` was consumed and is now in progress."""
        self._pending.append(offset)
        self.next_offset = offset + 1

    def skip_through(self, offset: int) -> None:
        """Record that every offset up to ``offset`` that was consumed and not :meth:`add`-ed
        finished at once (filtered out): one call for a batch's run of filtered offsets,
        the run's added offsets among them. Only unfinished offsets are kept: the lowest
        of them is what :meth:`committable` reads, and a finished offset never is.
        ``next_offset`` never moves back."""
        if self.next_offset is None or offset >= self.next_offset:
            self.next_offset = offset + 1

    def done(self, offset: int) -> None:
        """Record that ``offset`` is finished (delivered, filtered, retried or dead-lettered)."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            early = self._done_early
            while pending and early and pending[0] in early:
                early.discard(pending.popleft())
        else:
            self._done_early.add(offset)

    def abandon(self, offset: int) -> None:
        """``offset`` will not finish here (its partition was revoked): stop waiting for it.

        It stays the lowest unfinished offset if it was, so the commit never passes it.
        """
        self._abandoned += 1

    @property
    def in_flight(self) -> int:
        return len(self._pending) - len(self._done_early) - self._abandoned

    def committable(self) -> int | None:
        """The offset to commit: the lowest unfinished, or one past the last seen."""
        if self._pending:
            return self._pending[0]
        return self.next_offset

    def take_commit(self) -> int | None:
        """The committable offset if it moved since the last call, else None."""
        offset = self.committable()
        if offset is None or offset == self.committed:
            return None
        self.committed = offset
        return offset
