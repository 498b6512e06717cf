"""The consumer thread: the one owner of the group's confluent-kafka ``Consumer``.

It fetches in batches with ``consume(num_messages, timeout)`` and hands each
batch to the event loop with ``loop.call_soon_threadsafe``. The loop never
touches the consumer: it posts commands (commit, pause, resume, seek) that
this thread runs between fetches. Rebalance callbacks run here too; on revoke
the thread asks the loop to finish the revoked partitions' in-flight work
(with a deadline), commits what finished, and only then returns.

Backpressure (:meth:`ConsumerThread.hold_input`): while the loop has too many
events pending, the thread stops fetching at all, and what librdkafka has
prefetched stays queued there. Pausing partitions instead drops that queue,
and after the resume the first records took ~1 s to arrive again on the
development broker: measured with ``stream-wfm bench``, the buffer ran dry in
every cycle (20,000 → 0 pending, nothing in flight). Not fetching also means
no rebalance callback and no retry record is served, so after ``hold_limit``
seconds the thread pauses the input partitions and fetches again (retry
topics, group duties) until the loop releases the hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

log = logging.getLogger(__name__)

TP = tuple[str, int]

#: How long backpressure may stop all fetching before the input partitions are paused
#: instead (see the module docstring); read when the service starts.
HOLD_LIMIT_SECONDS = 3.0


class BatchSink(Protocol):
    """What the event loop side offers the consumer thread (all called on the loop)."""

    def on_batch(self, messages: list[Message]) -> None: ...

    def on_assigned(self, partitions: list[TP]) -> None: ...

    def on_revoked(self, partitions: list[TP]) -> concurrent.futures.Future[dict[TP, int]]:
        """Finish the partitions' work; resolve with their final committable offsets."""
        ...


@dataclass
class Command:
    kind: str  # "commit" | "pause" | "resume" | "seek" | "call"
    partitions: list[TopicPartition] = field(default_factory=list)
    fn: Callable[[Consumer], None] | None = None


class ConsumerThread:
    """Runs the group consumer on a dedicated thread."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        loop: asyncio.AbstractEventLoop,
        sink: BatchSink,
        *,
        batch_size: int = 1000,
        max_queued_batches: int = 2,
        poll_timeout: float = 0.05,
        revoke_timeout: float = 10.0,
        on_progress: Callable[[float], None] | None = None,
        on_commit_result: Callable[[bool], None] | None = None,
        on_lag: Callable[[dict[TP, int], list[TP]], None] | None = None,
        lag_interval: float = 1.0,
        input_topics: frozenset[str] = frozenset(),
        hold_limit: float = HOLD_LIMIT_SECONDS,
    ) -> None:
        self._config = {**config, "on_commit": self._on_commit, "error_cb": self._on_error}
        self._topics = topics
        self._loop = loop
        self._sink = sink
        self._batch_size = batch_size
        # Batches handed to the loop and not yet processed (see _wait_for_handoff).
        self._handoff = threading.BoundedSemaphore(max_queued_batches)
        self._poll_timeout = poll_timeout
        self._revoke_timeout = revoke_timeout
        self._on_progress = on_progress
        self._on_commit_result = on_commit_result
        self._on_lag = on_lag
        self._lag_interval = lag_interval
        self._next_lag = 0.0
        self._lag_reported: set[TP] = set()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._fetching = threading.Event()
        self._fetching.set()
        # Backpressure: cleared by hold_input(True); see the module docstring.
        self._input_open = threading.Event()
        self._input_open.set()
        self._input_topics = input_topics
        self._hold_limit = hold_limit
        self._inputs_paused: list[TopicPartition] = []  # paused after hold_limit
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)
        self._consumer: Consumer | None = None
        self.assignment: set[TP] = set()
        self.committed: dict[TP, int] = {}
        self.fatal_error: str | None = None
        # Set while librdkafka reports every broker down; cleared by a metadata round trip.
        self.broker_error: str | None = None
        self._next_broker_check = 0.0
        self.closed = threading.Event()

    # --- called from the loop -------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def post(self, command: Command) -> None:
        self._commands.put(command)

    def commit(self, offsets: dict[TP, int]) -> None:
        self.post(Command("commit", [TopicPartition(t, p, o) for (t, p), o in offsets.items()]))

    def pause(self, partitions: list[TP]) -> None:
        self.post(Command("pause", [TopicPartition(t, p) for t, p in partitions]))

    def resume(self, partitions: list[TP]) -> None:
        self.post(Command("resume", [TopicPartition(t, p) for t, p in partitions]))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.post(Command("seek", [TopicPartition(topic, partition, offset)]))

    def hold_input(self, hold: bool) -> None:
        """Stop fetching (backpressure) or start again; see the module docstring."""
        if hold:
            self._input_open.clear()
        else:
            self._input_open.set()

    def stop_fetching(self) -> None:
        """Stop handing out new batches (shutdown: drain first)."""
        self._fetching.clear()

    def stop(self, final_offsets: dict[TP, int] | None = None) -> None:
        """Commit ``final_offsets`` synchronously, close the consumer, join the thread."""
        if final_offsets:
            self.commit(final_offsets)
        self._stop.set()

    async def wait_closed(self, within: float) -> bool:
        return await asyncio.to_thread(self.closed.wait, within)

    # --- the thread -------------------------------------------------------------
    def _run(self) -> None:
        try:
            consumer = self._consumer = Consumer(self._config)
            consumer.subscribe(
                self._topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
            )
            paused_all = False
            while not self._stop.is_set():
                self._run_commands(consumer)
                if not self._hold_input(consumer):
                    break
                fetching = self._fetching.is_set()
                if not fetching and not paused_all:
                    # Draining for shutdown: keep serving the group (rebalance callbacks run
                    # inside consume) but hand out nothing new; those records stay uncommitted.
                    consumer.pause(consumer.assignment())
                    paused_all = True
                if not self._wait_for_handoff(consumer):
                    break
                batch = consumer.consume(num_messages=self._batch_size, timeout=self._poll_timeout)
                now = time.time()
                if self._on_progress is not None:
                    self._on_progress(now)
                if self.broker_error is not None and now >= self._next_broker_check:
                    self._next_broker_check = now + 2.0
                    self._check_broker(consumer)
                if self._on_lag is not None and now >= self._next_lag:
                    self._next_lag = now + self._lag_interval
                    self._report_lag(consumer)
                if batch and fetching:
                    self._loop.call_soon_threadsafe(self._hand_over, batch)
                else:
                    self._handoff.release()
            self._run_commands(consumer, synchronous=True)
        except KafkaException as exc:
            self.fatal_error = str(exc.args[0])
            log.exception("consumer failed", extra={"error": self.fatal_error})
        finally:
            if self._consumer is not None:
                self._consumer.close()  # leaves the group: partitions move at once
            self.closed.set()

    def _hold_input(self, consumer: Consumer) -> bool:
        """Apply backpressure before a fetch: wait while the input is held, up to
        ``hold_limit``, then pause the input partitions; resume them once released.
        False: stop."""
        if self._input_open.is_set():
            if self._inputs_paused:
                owned = [
                    p for p in self._inputs_paused if (p.topic, p.partition) in self.assignment
                ]
                if owned:
                    consumer.resume(owned)
                self._inputs_paused = []
            return True
        if self._inputs_paused:
            return True  # held for long: inputs paused, the rest keeps being fetched
        deadline = time.monotonic() + self._hold_limit
        while not self._input_open.wait(self._poll_timeout):
            if self._stop.is_set():
                return False
            self._run_commands(consumer)
            if time.monotonic() >= deadline:
                self._pause_inputs(consumer, consumer.assignment())
                log.info(
                    "input held for long: input partitions paused meanwhile",
                    extra={"hold_limit": self._hold_limit},
                )
                break
        return True

    def _pause_inputs(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        inputs = [tp for tp in partitions if tp.topic in self._input_topics]
        if inputs:
            consumer.pause(inputs)
            self._inputs_paused.extend(inputs)

    def _wait_for_handoff(self, consumer: Consumer) -> bool:
        """Fetch again only when the loop has fewer than ``max_queued_batches`` batches
        waiting: a backlog stays in librdkafka (where pausing a partition drops it) instead
        of piling up in the loop's ready queue, which would starve its I/O. False: stop."""
        while not self._handoff.acquire(timeout=self._poll_timeout):
            if self._stop.is_set():
                return False
            self._run_commands(consumer)
        return True

    def _hand_over(self, batch: list[Message]) -> None:
        """On the loop: process one batch, then let the thread fetch the next."""
        try:
            self._sink.on_batch(batch)
        finally:
            self._handoff.release()

    def _run_commands(self, consumer: Consumer, synchronous: bool = False) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._execute(consumer, cmd, synchronous)
            except KafkaException as exc:
                log.warning(
                    "consumer command failed",
                    extra={"command": cmd.kind, "error": str(exc.args[0])},
                )

    def _execute(self, consumer: Consumer, cmd: Command, synchronous: bool) -> None:
        if cmd.kind == "commit":
            owned = [tp for tp in cmd.partitions if (tp.topic, tp.partition) in self.assignment]
            if owned:
                if synchronous:
                    self._commit_sync(consumer, owned, "shutdown")
                else:
                    consumer.commit(offsets=owned, asynchronous=True)
        elif cmd.kind == "pause":
            consumer.pause(cmd.partitions)
        elif cmd.kind == "resume":
            consumer.resume(cmd.partitions)
        elif cmd.kind == "seek":
            for tp in cmd.partitions:
                if (tp.topic, tp.partition) in self.assignment:
                    consumer.seek(tp)
        elif cmd.kind == "call" and cmd.fn is not None:
            cmd.fn(consumer)

    def _commit_sync(self, consumer: Consumer, offsets: list[TopicPartition], when: str) -> None:
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False) or []
        except KafkaException as exc:
            log.warning("offset commit failed", extra={"when": when, "error": str(exc.args[0])})
            if self._on_commit_result is not None:
                self._on_commit_result(False)
            return
        failed = [tp for tp in result if tp.error is not None]
        for tp in failed:
            log.warning(
                "offset commit failed",
                extra={
                    "when": when,
                    "partition": f"{tp.topic}[{tp.partition}]",
                    "error": str(tp.error),
                },
            )
        self._record_commit(result)
        log.info("offsets committed", extra={"when": when, "offsets": _fmt_offsets(result)})
        if self._on_commit_result is not None:
            self._on_commit_result(not failed)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if self.broker_error is None:
                log.warning("Kafka brokers unreachable", extra={"error": str(err)})
            self.broker_error = str(err)
        elif err.fatal():
            self.fatal_error = str(err)
            log.error("fatal Kafka error", extra={"error": str(err)})

    def _check_broker(self, consumer: Consumer) -> None:
        try:
            consumer.list_topics(timeout=1.0)
        except KafkaException:
            return
        log.info("Kafka brokers reachable again")
        self.broker_error = None

    def _report_lag(self, consumer: Consumer) -> None:
        """Lag per assigned partition: the end offset this consumer has seen (cached from
        fetch responses, no broker round trip) minus the committed offset."""
        assert self._on_lag is not None
        lag: dict[TP, int] = {}
        for tp in self.assignment:
            low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            if high < 0:
                continue
            committed = self.committed.get(tp, low if low >= 0 else 0)
            lag[tp] = max(0, high - committed)
        gone = sorted(self._lag_reported - lag.keys())
        self._lag_reported = set(lag)
        self._on_lag(lag, gone)

    def _record_commit(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self.committed[(tp.topic, tp.partition)] = tp.offset

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        ok = err is None
        if ok:
            self._record_commit(partitions)
        elif err is not None and err.code() != KafkaError._NO_OFFSET:
            log.warning("offset commit failed", extra={"error": str(err)})
        if self._on_commit_result is not None:
            self._on_commit_result(ok)

    # --- rebalance callbacks (on this thread, inside consume()) ------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self.assignment.update(tps)
        log.info("partitions assigned", extra={"partitions": _fmt(tps)})
        if self._inputs_paused:
            self._pause_inputs(consumer, partitions)  # held for long: new inputs wait too
        self._loop.call_soon_threadsafe(self._sink.on_assigned, tps)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        log.info(
            "partitions revoked; finishing their in-flight events", extra={"partitions": _fmt(tps)}
        )
        # Run queued commits first so nothing posted before the revoke is lost.
        self._run_commands(consumer, synchronous=True)
        future: concurrent.futures.Future[dict[TP, int]] = concurrent.futures.Future()

        def ask_loop() -> None:
            inner = self._sink.on_revoked(tps)
            inner.add_done_callback(lambda f: _chain(f, future))

        try:
            self._loop.call_soon_threadsafe(ask_loop)
            offsets = future.result(timeout=self._revoke_timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            offsets = {}
            log.warning(
                "revoked partitions did not finish in time; uncommitted events will be "
                "delivered again by their new owner",
                extra={"partitions": _fmt(tps)},
            )
        commit = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if commit:
            self._commit_sync(consumer, commit, "revoke")
        self._forget(tps)

    def _forget(self, tps: list[TP]) -> None:
        gone = set(tps)
        self.assignment.difference_update(gone)
        for tp in gone:
            self.committed.pop(tp, None)
        self._inputs_paused = [p for p in self._inputs_paused if (p.topic, p.partition) not in gone]

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        log.warning("partitions lost (no commit possible)", extra={"partitions": _fmt(tps)})
        self._forget(tps)
        self._loop.call_soon_threadsafe(self._sink.on_revoked, tps)


def _chain(
    source: concurrent.futures.Future[dict[TP, int]],
    target: concurrent.futures.Future[dict[TP, int]],
) -> None:
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _fmt_offsets(tps: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in tps)


def _fmt(tps: list[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in sorted(tps))
