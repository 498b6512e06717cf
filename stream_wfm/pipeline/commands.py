"""What the event loop asks of the consumer thread, and how that thread does it.

The confluent ``Consumer`` is not thread-safe: only the consumer thread touches it.
The loop posts one of the commands below (through
:meth:`~stream_wfm.pipeline.consumer.ConsumerThread.post`); the thread runs
them between fetches with :func:`execute`. Each command names what is done to
the consumer; none carries code to run on the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal, Protocol

from confluent_kafka import TopicPartition

__all__ = [
    "TP",
    "Command",
    "Commit",
    "Pause",
    "Resume",
    "Seek",
    "execute",
]

#: A (topic, partition) pair, the loop's name for a partition.
TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit ``offsets`` of the partitions this member still owns (others are skipped:
    committing a partition given up would move its new owner's position)."""

    offsets: dict[TP, int]


@dataclass(frozen=True, slots=True)
class Pause:
    partitions: tuple[TP, ...]


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume ``partitions``; then, when ``then`` is set, schedule it on the event loop.

    ``then`` runs after the resume took effect, so the loop can tell the records
    fetched before it (still queued to the loop) from those fetched after.
    """

    partitions: tuple[TP, ...]
    then: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Seek:
    """Seek an owned partition back to ``offset`` (it is fetched again from there)."""

    partition: TP
    offset: int


Command = Commit | Pause | Resume | Seek


class CommandTarget(Protocol):
    """The part of the confluent ``Consumer`` the commands use (a fake in unit tests)."""

    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[True]) -> None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...


def execute(
    consumer: CommandTarget,
    command: Command,
    owned: Collection[TP],
    *,
    notify: Callable[[Callable[[], None]], object],
    commit_sync: Callable[[list[TopicPartition]], None] | None = None,
) -> None:
    """Run ``command`` on the consumer thread.

    ``owned`` is the current assignment; ``notify`` schedules a callable on the
    event loop (``loop.call_soon_threadsafe``). With ``commit_sync`` (at shutdown
    and before a revoke) commits go through it, synchronously; otherwise they are
    asynchronous. Raises what the consumer raises (``KafkaException``).
    """
    match command:
        case Commit(offsets):
            parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in owned]
            if not parts:
                return
            if commit_sync is not None:
                commit_sync(parts)
            else:
                consumer.commit(offsets=parts, asynchronous=True)
        case Pause(partitions):
            consumer.pause([TopicPartition(t, p) for t, p in partitions])
        case Resume(partitions, then):
            consumer.resume([TopicPartition(t, p) for t, p in partitions])
            if then is not None:
                notify(then)
        case Seek((topic, partition), offset):
            if (topic, partition) in owned:
                consumer.seek(TopicPartition(topic, partition, offset))
