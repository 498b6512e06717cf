"""The consumer thread: the one owner of the group's confluent-kafka ``Consumer``.

It fetches in batches with ``consume(num_messages, timeout)`` and hands each
batch to the event loop with ``loop.call_soon_threadsafe``. The loop never
touches the consumer: it posts commands (:mod:`stream_wfm.pipeline.commands`)
that this thread runs between fetches, and holds the input under backpressure
(:mod:`stream_wfm.pipeline.input_hold`). Rebalance callbacks run here too; on
revoke the thread asks the loop to finish the revoked partitions' in-flight
work (with a deadline), commits what finished, and only then returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from stream_wfm.pipeline.commands import TP, Command, Commit, execute
from stream_wfm.pipeline.commits import CommitLog
from stream_wfm.pipeline.input_hold import InputHold

log = logging.getLogger(__name__)

__all__ = ["TP", "AssignScan", "BatchSink", "ConsumerThread"]

#: ``(scan, sink)``: see ``ConsumerThread(on_assign_scan=...)``.
AssignScan = tuple[
    Callable[[Consumer, list[TopicPartition]], list[Any]], Callable[[list[Any]], None]
]


class BatchSink(Protocol):
    """What the event loop side offers the consumer thread (all called on the loop)."""

    def on_batch(self, messages: list[Message]) -> None: ...

    def on_assigned(self, partitions: list[TP]) -> None: ...

    def on_revoked(self, partitions: list[TP]) -> concurrent.futures.Future[dict[TP, int]]:
        """Finish the partitions' work; resolve with their final committable offsets."""
        ...


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
        hold_limit: float = 3.0,
        on_assign_scan: AssignScan | None = None,
    ) -> None:
        """``on_assign_scan``: run on this thread when partitions are assigned, before
        anything of them is fetched: ``(scan, sink)``, ``sink(scan(consumer,
        partitions))`` then runs on the loop before the sink hears of the assignment
        (the key order's rebuild, :mod:`stream_wfm.pipeline.order_scan`)."""
        self._commits = CommitLog(on_commit_result)
        self._on_assign_scan = on_assign_scan
        self._config = {**config, "on_commit": self._commits.on_commit, "error_cb": self._on_error}
        self._topics = topics
        self._loop = loop
        self._sink = sink
        self._batch_size = batch_size
        # Batches handed to the loop and not yet processed (see _wait_for_handoff).
        self._handoff = threading.BoundedSemaphore(max_queued_batches)
        self._poll_timeout = poll_timeout
        self._revoke_timeout = revoke_timeout
        self._on_progress = on_progress
        self._on_lag = on_lag
        self._lag_interval = lag_interval
        self._next_lag = 0.0
        self._lag_reported: set[TP] = set()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._fetching = threading.Event()
        self._fetching.set()
        self._input = InputHold(input_topics, hold_limit, poll_timeout)
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)
        self._consumer: Consumer | None = None
        self.assignment: set[TP] = set()
        self.fatal_error: str | None = None
        # Set while librdkafka reports every broker down; cleared by a metadata round trip.
        self.broker_error: str | None = None
        self._next_broker_check = 0.0
        self.closed = threading.Event()

    # --- called from the loop -------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def post(self, command: Command) -> None:
        """Queue ``command`` for the thread; it runs before the next fetch."""
        self._commands.put(command)

    def hold_input(self, hold: bool) -> None:
        """Stop fetching input (backpressure) or start again; see ``input_hold``."""
        self._input.hold(hold)

    def stop_fetching(self) -> None:
        """Stop handing out new batches (shutdown: drain first)."""
        self._fetching.clear()

    def stop(self, final_offsets: dict[TP, int] | None = None) -> None:
        """Commit ``final_offsets`` synchronously, close the consumer, join the thread."""
        if final_offsets:
            self.post(Commit(final_offsets))
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
                if not self._input.apply(
                    consumer, self.assignment, self._stop, lambda: self._run_commands(consumer)
                ):
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
                self._after_fetch(consumer, time.time())
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

    def _after_fetch(self, consumer: Consumer, now: float) -> None:
        """Liveness, broker reachability and lag, reported at most every ``lag_interval``."""
        if self._on_progress is not None:
            self._on_progress(now)
        if self.broker_error is not None and now >= self._next_broker_check:
            self._next_broker_check = now + 2.0
            self._check_broker(consumer)
        if self._on_lag is not None and now >= self._next_lag:
            self._next_lag = now + self._lag_interval
            lag = self._commits.lag(consumer, self.assignment)
            gone = sorted(self._lag_reported - lag.keys())
            self._lag_reported = set(lag)
            self._on_lag(lag, gone)

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
        def commit_sync(offsets: list[TopicPartition]) -> None:
            self._commits.commit_sync(consumer, offsets, "shutdown")

        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                execute(
                    consumer,
                    cmd,
                    self.assignment,
                    notify=self._loop.call_soon_threadsafe,
                    commit_sync=commit_sync if synchronous else None,
                )
            except KafkaException as exc:
                log.warning(
                    "consumer command failed",
                    extra={"command": type(cmd).__name__, "error": str(exc.args[0])},
                )

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

    # --- rebalance callbacks (on this thread, inside consume()) ------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self.assignment.update(tps)
        log.info("partitions assigned", extra={"partitions": _fmt(tps)})
        # A partition this member paused (a retry partition waiting for its due time) and
        # then lost in a rebalance comes back paused when it is assigned to it again: its
        # waiting state went with the revoke, so nothing would ever resume it.
        consumer.resume(partitions)
        self._input.assigned(consumer, partitions)
        if self._on_assign_scan is not None:
            scan, sink = self._on_assign_scan
            found = scan(consumer, partitions)
            if found:
                self._loop.call_soon_threadsafe(sink, found)
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
            self._commits.commit_sync(consumer, commit, "revoke")
        self._forget(tps)

    def _forget(self, tps: list[TP]) -> None:
        gone = set(tps)
        self.assignment.difference_update(gone)
        self._commits.forget(gone)
        self._input.forget(gone)

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


def _fmt(tps: list[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in sorted(tps))
