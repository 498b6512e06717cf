"""The config store: every integration of the config topic, in memory, followed live.

Every instance reads the whole config topic from the beginning, without a
consumer group, and keeps following it (docs/contract.md §3). Tombstones delete,
invalid records are rejected (log + metric) and the account keeps its last
valid config. The store is *ready* once every partition has reached its end
(partition EOF) as of start-up.

A dedicated thread owns the consumer. Each update replaces the account's
:class:`Entry` in one dict assignment, so readers on the event loop always see
a consistent config together with what is derived from it: the service's store
makes :class:`~stream_wfm.delivery.templates.TemplatedEntry` entries, which keep
their compiled request templates (``ConfigStore(..., entry_type=...)``; this
package does not import :mod:`stream_wfm.delivery`, which depends on it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from stream_wfm.integrations.exceptions import ConfigValidationError
from stream_wfm.integrations.model import IntegrationConfig, parse_config_record
from stream_wfm.kafka.topic_wait import wait_for_partitions

log = logging.getLogger(__name__)


class Entry:
    """One account's integration: what routing reads, and its config.

    With 100,000 integrations loaded most accounts are idle, so an entry keeps
    only what :func:`~stream_wfm.routing.decide` and the failure path read (a few
    flags and ``max_retries``) plus the config record's bytes. The validated
    :class:`IntegrationConfig` (~1.4 KB as a pydantic model) is re-parsed from
    those bytes the first time something needs it (the request templates, the
    console) and then kept: the config never changes within an entry (an update
    is a new entry). Measured with the bench's 100,000 integrations (~450-byte
    records): 142 MB of RSS as models, 72 MB as entries.
    """

    __slots__ = (
        "_config",
        "_raw",
        "account_id",
        "agent_login_events",
        "agent_logout_events",
        "agent_states",
        "disabled_reason",
        "enabled",
        "end_call_events",
        "has_agent_url",
        "has_call_url",
        "max_retries",
        "send_all_agent_states",
        "version",
    )

    def __init__(self, config: IntegrationConfig, raw: bytes | None = None) -> None:
        """``raw``: the config record's value; when given, ``config`` is not kept."""
        self.account_id = config.account_id
        self.enabled = config.enabled
        self.has_agent_url = config.agent_event_url is not None
        self.has_call_url = config.call_event_url is not None
        self.agent_states = config.agent_states
        self.send_all_agent_states = config.send_all_agent_states
        self.agent_login_events = config.agent_login_events
        self.agent_logout_events = config.agent_logout_events
        self.end_call_events = config.end_call_events
        self.max_retries = config.max_retries
        self.disabled_reason = config.disabled_reason
        #: Where the config record was read, ``(partition, offset)``; None when not read
        #: from the config topic. Distinguishes two writes of the same config.
        self.version: tuple[int, int] | None = None
        self._raw = raw
        self._config = None if raw is not None else config

    @classmethod
    def compile(cls, config: IntegrationConfig) -> Self:
        """The entry of ``config``, kept as it is (there are no record bytes to re-parse)."""
        return cls(config)

    @property
    def config(self) -> IntegrationConfig:
        config = self._config
        if config is None:
            assert self._raw is not None
            # Validated when it was loaded: parsing the same bytes again cannot fail.
            config = self._config = parse_config_record(self.account_id.encode(), self._raw)
        return config

    def __repr__(self) -> str:
        return f"Entry(account_id={self.account_id!r})"


E = TypeVar("E", bound="Entry")

Listener = Callable[[str, "Entry | None"], None]


class ConfigStore(Generic[E]):
    """Follows the config topic; ``get(account_id)`` is safe from any thread.

    ``entry_type`` makes the entries: :class:`Entry` (the console, the CLI), or a
    subclass that derives more from the config (the service's store makes
    :class:`~stream_wfm.delivery.templates.TemplatedEntry` entries, which compile request
    templates); :meth:`get` returns that type.
    """

    def __init__(
        self,
        topic: str,
        consumer_config: dict[str, Any],
        *,
        entry_type: type[E],
        on_invalid: Callable[[], None] | None = None,
        on_change: Listener | None = None,
    ) -> None:
        self.topic = topic
        self._consumer_config = consumer_config
        self._entry_type = entry_type
        self._entries: dict[str, E] = {}
        #: The account's entry, or None: the entries' own ``dict.get`` (a C call), as the
        #: pipeline asks once per event; a method wrapping it cost ~0.8k instructions more.
        self.get: Callable[[str], E | None] = self._entries.get
        self._on_invalid = on_invalid
        self._on_change = on_change
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-store", daemon=True)
        self._status = "config store not started"
        self.records_applied = 0
        self.last_error: str | None = None

    # --- reading -------------------------------------------------------------
    def accounts(self) -> dict[str, E]:
        """A snapshot of every account's entry."""
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def status(self) -> str:
        return self._status

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    # --- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the thread ----------------------------------------------------------
    def _run(self) -> None:
        consumer = Consumer(self._consumer_config)
        try:
            partitions = self._wait_for_topic(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            pending_eof = set(partitions)
            self._status = f"reading config topic {self.topic} ({len(pending_eof)} partitions left)"
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.2):
                    err = msg.error()
                    if err is None:
                        self._apply(msg)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        pending_eof.discard(msg.partition())
                        if not pending_eof and not self._ready.is_set():
                            self._status = "config loaded"
                            self._ready.set()
                            log.info(
                                "config store ready",
                                extra={"topic": self.topic, "accounts": len(self._entries)},
                            )
                    else:
                        log.warning("config consumer error", extra={"error": str(err)})
        finally:
            consumer.close()

    def _wait_for_topic(self, consumer: Consumer) -> list[int] | None:
        return wait_for_partitions(
            consumer,
            self.topic,
            self._stop,
            status=self._set_status,
            missing=f"config topic {self.topic} does not exist (run: stream-wfm topics create)",
            missing_log="config topic missing",
            list_timeout=5.0,
            recheck=1.0,
        )

    def _set_status(self, status: str) -> None:
        self._status = status

    def _apply(self, msg: Message) -> None:
        raw_key = msg.key()
        value = msg.value()
        self.records_applied += 1
        if value is None:
            if raw_key is None:
                self._reject(msg, "tombstone without a key")
                return
            account_id = raw_key.decode("utf-8", "replace")
            if self._entries.pop(account_id, None) is not None:
                log.info("integration deleted", extra={"account_id": account_id})
            self._notify(account_id, None)
            return
        try:
            config = parse_config_record(raw_key, value)
        except ConfigValidationError as exc:
            self._reject(msg, str(exc))
            return
        entry = self._entry_type(config, value)
        entry.version = (msg.partition(), msg.offset())  # type: ignore[assignment]
        self._entries[config.account_id] = entry
        log.debug("integration loaded", extra={"account_id": config.account_id})
        self._notify(config.account_id, entry)

    def _notify(self, account_id: str, entry: Entry | None) -> None:
        if self._on_change is not None:
            self._on_change(account_id, entry)

    def _reject(self, msg: Message, why: str) -> None:
        self.last_error = why
        key = msg.key()
        log.warning(
            "invalid config record rejected; the account keeps its last valid config",
            extra={
                "account_id": key.decode("utf-8", "replace") if key else None,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "error": why,
            },
        )
        if self._on_invalid is not None:
            self._on_invalid()
