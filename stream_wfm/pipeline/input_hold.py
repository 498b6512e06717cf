"""Backpressure on the consumer thread: stop fetching, then pause the inputs.

While the event loop has too many events pending it holds the input
(:meth:`InputHold.hold`); the consumer thread then stops fetching at all, and
what librdkafka has prefetched stays queued there. Pausing partitions instead
drops that queue, and after the resume the first records took ~1 s to arrive
again on the development broker: measured with ``stream-wfm bench``, the
buffer ran dry in every cycle (20,000 → 0 pending, nothing in flight). Not
fetching also means no rebalance callback and no retry record is served, so
after ``hold_limit`` seconds the input partitions are paused and the thread
fetches again (retry topics, group duties) until the loop releases the hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Protocol

from confluent_kafka import TopicPartition

from stream_wfm.pipeline.commands import TP

log = logging.getLogger(__name__)

__all__ = ["InputHold"]


class _Pausable(Protocol):
    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def assignment(self) -> list[TopicPartition]: ...


class InputHold:
    """The hold flag (set from the loop) and its effect (applied on the consumer thread)."""

    def __init__(self, input_topics: Collection[str], hold_limit: float, poll: float) -> None:
        self._input_topics = input_topics
        self._hold_limit = hold_limit
        self._poll = poll
        self._open = threading.Event()
        self._open.set()
        self._paused: list[TopicPartition] = []  # input partitions paused after hold_limit

    def hold(self, held: bool) -> None:
        """From the loop: hold the input, or release it."""
        if held:
            self._open.clear()
        else:
            self._open.set()

    def apply(
        self,
        consumer: _Pausable,
        owned: Collection[TP],
        stopping: threading.Event,
        between: Callable[[], None],
    ) -> bool:
        """Before a fetch, on the consumer thread: while the input is held, wait (running
        ``between`` meanwhile) up to ``hold_limit``, then pause the input partitions;
        resume those of ``owned`` once released. False: ``stopping`` was set."""
        if self._open.is_set():
            if self._paused:
                resume = [p for p in self._paused if (p.topic, p.partition) in owned]
                if resume:
                    consumer.resume(resume)
                self._paused = []
            return True
        if self._paused:
            return True  # held for long: inputs paused, the rest keeps being fetched
        deadline = time.monotonic() + self._hold_limit
        while not self._open.wait(self._poll):
            if stopping.is_set():
                return False
            between()
            if time.monotonic() >= deadline:
                self.pause_inputs(consumer, consumer.assignment())
                log.info(
                    "input held for long: input partitions paused meanwhile",
                    extra={"hold_limit": self._hold_limit},
                )
                break
        return True

    def pause_inputs(self, consumer: _Pausable, partitions: list[TopicPartition]) -> None:
        inputs = [tp for tp in partitions if tp.topic in self._input_topics]
        if inputs:
            consumer.pause(inputs)
            self._paused.extend(inputs)

    def assigned(self, consumer: _Pausable, partitions: list[TopicPartition]) -> None:
        """Newly assigned partitions: while the inputs are paused, new inputs wait too."""
        if self._paused:
            self.pause_inputs(consumer, partitions)

    def forget(self, gone: Collection[TP]) -> None:
        self._paused = [p for p in self._paused if (p.topic, p.partition) not in gone]
