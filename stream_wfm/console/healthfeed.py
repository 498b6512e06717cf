"""The console's copy of the health topic (docs/contract.md §10), followed live.

Like the config store (docs/contract.md §3), a thread reads the compacted health
topic from the beginning, without a consumer group, and keeps following it: the
latest record per key (``{account_id}/{instance_id}``), grouped by account. A
tombstone deletes its key; a record that is not a health record, whose key is not
its own ``account_id/instance_id``, or with a time that does not parse, is skipped
with a warning (the key keeps its last valid record) and never stops the thread.
Records too old to count (:data:`~stream_wfm.console.health.FRESH_SECONDS`) are
dropped now and then, so memory follows the instances and endpoints in use.

The health topic is optional for the console: while it is missing, or the broker
is away, the feed waits and the pages show no health data (``—``); the console's
readiness depends on the config topic only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from stream_wfm.console.health import FRESH_SECONDS
from stream_wfm.health.exceptions import InvalidHealthRecordError
from stream_wfm.health.records import HealthRecord, decode_health_record, parse_iso_utc
from stream_wfm.kafka.topic_wait import wait_for_partitions

log = logging.getLogger(__name__)

#: How often stale records are dropped (seconds).
PRUNE_EVERY: Final = 30.0
_TOPIC_RECHECK: Final = 2.0


class _Invalid(ValueError):
    """A health topic record to skip."""


def _check_times(record: HealthRecord) -> None:
    for kind, report in record.endpoints.items():
        for name in ("last_success_at", "last_failure_at", "failing_since"):
            text = getattr(report, name)
            if text is None:
                continue
            try:
                parse_iso_utc(text)
            except ValueError:
                raise _Invalid(f"the {kind} endpoint's {name} is not a time") from None


def _parse(key: bytes | None, value: bytes) -> HealthRecord:
    if key is None:
        raise _Invalid("the record has no key")
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("the record key is not UTF-8") from None
    try:
        record = decode_health_record(value)
    except InvalidHealthRecordError as exc:
        raise _Invalid(str(exc)) from None
    if record.key != key_text:
        raise _Invalid("the record key does not match its account_id/instance_id")
    _check_times(record)
    return record


class HealthFeed:
    """The latest health record of every instance, by account; safe to read from any
    thread. ``clock`` (Unix seconds) is what the pages merge with, and what pruning uses."""

    def __init__(
        self,
        topic: str,
        consumer_config: dict[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = FRESH_SECONDS,
    ) -> None:
        self.topic = topic
        self._consumer_config = consumer_config
        self._clock = clock
        self._max_age = max_age
        self._lock = threading.Lock()
        self._records: dict[str, HealthRecord] = {}  # by key
        self._by_account: dict[str, dict[str, HealthRecord]] = {}  # account → key → record
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = "health feed not started"
        self.invalid_records = 0

    # --- reading ---------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def records_of(self, account_id: str) -> list[HealthRecord]:
        with self._lock:
            return list(self._by_account.get(account_id, {}).values())

    def accounts(self) -> dict[str, list[HealthRecord]]:
        """A snapshot: every account with records, and its records."""
        with self._lock:
            return {account: list(keys.values()) for account, keys in self._by_account.items()}

    @property
    def ready(self) -> bool:
        """The topic has been read to its end as of start-up."""
        return self._ready.is_set()

    @property
    def status(self) -> str:
        return self._status

    # --- applying records (the thread; public for tests) ----------------------------------
    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the health topic (``value`` None: a tombstone)."""
        if value is None:
            if key is not None:
                self._delete(key.decode("utf-8", "replace"))
            return
        try:
            record = _parse(key, value)
        except _Invalid as exc:
            self.invalid_records += 1
            log.warning(
                "invalid health record skipped",
                extra={
                    "topic": self.topic,
                    "key": None if key is None else key.decode("utf-8", "replace")[:200],
                    "error": str(exc),
                },
            )
            return
        with self._lock:
            self._forget(record.key)  # the key may have named another account before
            self._records[record.key] = record
            self._by_account.setdefault(record.account_id, {})[record.key] = record

    def _forget(self, key: str) -> None:
        """Remove ``key``'s record (the lock held)."""
        record = self._records.pop(key, None)
        if record is None:
            return
        keys = self._by_account.get(record.account_id, {})
        keys.pop(key, None)
        if not keys:
            self._by_account.pop(record.account_id, None)

    def _delete(self, key: str) -> None:
        with self._lock:
            self._forget(key)

    def prune(self) -> None:
        """Drop the records too old to count (they can only be replaced, never count again)."""
        cutoff = self._clock() - self._max_age
        with self._lock:
            stale = [
                key
                for key, record in self._records.items()
                if (at := _at(record)) is None or at < cutoff
            ]
        for key in stale:
            self._delete(key)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> HealthFeed:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-feed", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following; safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            thread.join(10)

    def _run(self) -> None:
        consumer = Consumer(self._consumer_config)
        try:
            partitions = self._wait_for_topic(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            pending_eof = set(partitions)
            self._status = f"reading health topic {self.topic}"
            pruned_at = time.monotonic()
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.2):
                    self._handle(msg, pending_eof)
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    self.prune()
                    pruned_at = time.monotonic()
        except KafkaException as exc:
            self._status = f"health topic not readable: {exc.args[0]}"
            log.warning("health feed stopped", extra={"topic": self.topic, "error": str(exc)})
        finally:
            consumer.close()

    def _handle(self, msg: Message, pending_eof: set[int]) -> None:
        err = msg.error()
        if err is None:
            self.apply(msg.key(), msg.value())
        elif err.code() == KafkaError._PARTITION_EOF:
            pending_eof.discard(msg.partition())
            if not pending_eof and not self._ready.is_set():
                self._status = "health topic loaded"
                self._ready.set()
        else:
            log.warning("health consumer error", extra={"topic": self.topic, "error": str(err)})

    def _wait_for_topic(self, consumer: Consumer) -> list[int] | None:
        return wait_for_partitions(
            consumer,
            self.topic,
            self._stop,
            status=self._set_status,
            missing=f"health topic {self.topic} does not exist",
            missing_log="health topic missing; no health shown",
            list_timeout=_TOPIC_RECHECK,
            recheck=_TOPIC_RECHECK,
        )

    def _set_status(self, status: str) -> None:
        self._status = status


def _at(record: HealthRecord) -> float | None:
    try:
        return parse_iso_utc(record.at)
    except ValueError:
        return None
