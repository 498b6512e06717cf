"""Re-enabling an integration, with a redrive of its failure period (docs/contract.md §10).

``stream-wfm config enable`` and the console's ``Re-enable`` call :func:`reenable`, which
blocks (the console runs it in a thread):

1. it reads the account's integration from the config topic, as ``config get`` does;
   already enabled, nothing is written and nothing redriven;
2. it writes the integration back with ``enabled: true`` and ``disabled_reason`` and
   ``disabled_at`` cleared, as ``config put`` does;
3. when the service had disabled it (``disabled_reason`` set) and a redrive is wanted,
   it redrives the account's dead letters with reason ``endpoint_disabled`` or
   ``retries_exhausted`` that were dead-lettered within the failure period: from the
   ``failing_since`` of the account's newest ``integration.disabled`` notice (without
   one, ``disabled_at`` minus ``STREAM_WFM_AUTO_DISABLE_AFTER``, or ``disabled_at`` when
   auto-disable is off) up to the re-enable, both ends included. Each event goes once
   (the DLQ may hold it twice), oldest input record first, at ``rate`` per second, as
   ``stream-wfm dlq redrive`` writes them (:mod:`stream_wfm.retry.redrive`): retry
   records with a fresh retry budget, due :data:`CONFIG_GRACE_SECONDS` after they are
   written, so that every instance has read the enabled config by then.

An integration an operator disabled (no ``disabled_reason``) is only enabled. The choices
are pure functions: :func:`failure_period_start` and :func:`choose_dead_letters`. Every
re-enable writes one audit log line (``config enable``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from stream_wfm.health.exceptions import InvalidHealthRecordError, NoIntegrationError, ReenableError
from stream_wfm.health.records import Notice, decode_notice, iso_utc, parse_iso_utc
from stream_wfm.integrations.model import IntegrationConfig
from stream_wfm.integrations.store import ConfigStore, Entry
from stream_wfm.integrations.writer import ConfigWriteError, ConfigWriter
from stream_wfm.kafka.config import producer_config, reader_config
from stream_wfm.retry.dead_letters import DlqEntry, DlqFilter, read_dead_letters
from stream_wfm.retry.exceptions import DlqError
from stream_wfm.retry.redrive import redrive as redrive_dead_letters
from stream_wfm.routing import ENDPOINT_DISABLED
from stream_wfm.settings import Settings

__all__ = [
    "REDRIVE_REASONS",
    "Choice",
    "ReenableResult",
    "choose_dead_letters",
    "failure_period_start",
    "period_filter",
    "reenable",
    "source_order",
]

log = logging.getLogger(__name__)

#: Seconds after which the redriven events are due: every instance reads the enabled config
#: well within that (the config topic is followed live), so none of them dead-letters a
#: redriven event again as endpoint_disabled for having read it before the config.
CONFIG_GRACE_SECONDS: Final = 5.0

#: The dead letters a re-enable redrives: what the failing endpoint cost.
REDRIVE_REASONS: Final = frozenset({ENDPOINT_DISABLED, "retries_exhausted"})
_TIMEOUT: Final = 30.0  # seconds to read a topic to its end
_CLIENT_ID: Final = "stream-wfm-reenable"


@dataclass(frozen=True, slots=True)
class ReenableResult:
    """What :func:`reenable` did.

    ``failing_since`` is the start of the failure period whose dead letters were redriven
    (unix seconds), or None when no redrive ran (not disabled by the service,
    ``redrive=False``, already enabled, or no start known). ``skipped`` counts the
    period's dead letters not redriven: further copies of an event already redriven, and
    those :func:`stream_wfm.retry.redrive.skip_reason` refuses. ``already_enabled``: the
    integration was enabled, nothing was written.
    """

    account_id: str
    was_disabled_by_service: bool
    failing_since: float | None
    redriven: int
    skipped: int
    already_enabled: bool = False


# --- the pure choices ------------------------------------------------------------------------


def failure_period_start(
    notices: Iterable[Notice],
    account_id: str,
    disabled_at: str | None,
    auto_disable_seconds: float | None,
) -> float | None:
    """When the failure period that disabled ``account_id``'s integration began (unix
    seconds): the ``failing_since`` of the account's newest notice (by its ``at``; of two
    at the same time the later one in ``notices``); without one ``disabled_at`` minus
    ``auto_disable_seconds``, or ``disabled_at`` itself when auto-disable is off (None).
    None when there is neither a notice nor ``disabled_at``."""
    newest: tuple[float, int, Notice] | None = None
    for position, notice in enumerate(notices):
        if notice.account_id != account_id:
            continue
        candidate = (_notice_time(notice), position, notice)
        if newest is None or candidate[:2] > newest[:2]:
            newest = candidate
    if newest is not None:
        return parse_iso_utc(newest[2].failing_since)
    if disabled_at is None:
        return None
    return parse_iso_utc(disabled_at) - (auto_disable_seconds or 0.0)


def _notice_time(notice: Notice) -> float:
    try:
        return parse_iso_utc(notice.at)
    except ValueError:
        return -math.inf  # a notice without a readable time is older than any other


def period_filter(account_id: str, since: float, until: float) -> DlqFilter:
    """The account's dead letters with a :data:`REDRIVE_REASONS` reason dead-lettered from
    ``since`` to ``until`` (unix seconds), both included."""
    return DlqFilter(
        account_id=account_id,
        reasons=REDRIVE_REASONS,
        since_ms=math.floor(since * 1000),
        until_ms=math.floor(until * 1000) + 1,
    )


def source_order(dead_letter: DlqEntry) -> tuple[int, str, int, int]:
    """Oldest first by the input record: its timestamp (none counts as oldest), then its
    topic, partition and offset."""
    source = dead_letter.record.source
    timestamp = -1 if source.timestamp_ms is None else source.timestamp_ms
    return (timestamp, source.topic, source.partition, source.offset)


@dataclass(frozen=True, slots=True)
class Choice:
    """The dead letters to redrive, oldest first, one per event id; ``duplicates``: the
    further matching copies left out."""

    letters: list[DlqEntry]
    duplicates: int


def choose_dead_letters(letters: Iterable[DlqEntry], flt: DlqFilter) -> Choice:
    """The letters ``flt`` matches, oldest first (:func:`source_order`), each event id
    once: of several copies the oldest is kept."""
    matching = sorted((dl for dl in letters if flt.matches(dl)), key=source_order)
    chosen: dict[str, DlqEntry] = {}
    for dead_letter in matching:
        chosen.setdefault(dead_letter.record.event_id, dead_letter)
    return Choice(list(chosen.values()), len(matching) - len(chosen))


# --- Kafka -------------------------------------------------------------------------------------


def _current_config(settings: Settings, account_id: str) -> IntegrationConfig:
    """The account's integration, read from the config topic as ``config get`` reads it."""
    store = ConfigStore(
        settings.config_topic, reader_config(settings, _CLIENT_ID), entry_type=Entry
    ).start()
    try:
        if not store.wait_ready(_TIMEOUT):
            raise ReenableError(f"could not read the config topic: {store.status}")
    finally:
        store.stop()
    entry = store.get(account_id)
    if entry is None:
        raise NoIntegrationError(f"no integration for account {account_id}")
    return entry.config


def _write_enabled(settings: Settings, config: IntegrationConfig) -> None:
    enabled = config.model_copy(
        update={"enabled": True, "disabled_reason": None, "disabled_at": None}
    )
    try:
        with ConfigWriter(settings.config_topic, producer_config(settings, _CLIENT_ID)) as writer:
            writer.check_topic()
            writer.put(enabled)
    except (ConfigWriteError, KafkaException) as exc:
        raise ReenableError(f"could not write the config topic: {exc}") from None


def _read_notices(settings: Settings) -> list[Notice]:
    """Every notice on the notices topic, in topic order (none when the topic is missing:
    the failure period then falls back to ``disabled_at``)."""
    topic = settings.notices_topic
    deadline = time.monotonic() + _TIMEOUT
    consumer = Consumer(reader_config(settings, _CLIENT_ID))
    try:
        try:
            # A plain list_topics() never auto-creates the topic.
            meta = consumer.list_topics(timeout=_TIMEOUT).topics.get(topic)
        except KafkaException as exc:
            raise ReenableError(f"broker not reachable: {exc.args[0]}") from None
        if meta is None or meta.error is not None or not meta.partitions:
            log.warning("notices topic missing", extra={"topic": topic})
            return []
        left = set(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(left)])
        notices: list[Notice] = []
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReenableError(f"{topic} not read to its end within {_TIMEOUT:g}s")
            for msg in consumer.consume(num_messages=500, timeout=min(0.05, remaining)):
                err, value = msg.error(), msg.value()
                if err is None and value is not None:
                    try:
                        notices.append(decode_notice(value))
                    except InvalidHealthRecordError:
                        log.debug("not a notice, skipped", extra={"topic": topic})
                elif err is not None and err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                elif err is not None and err.fatal():
                    raise ReenableError(f"cannot read {topic}: {err}")
                elif err is not None:
                    log.warning("notices read error", extra={"topic": topic, "error": str(err)})
        return notices
    finally:
        consumer.close()


def _redrive_period(
    settings: Settings,
    account_id: str,
    since: float,
    until: float,
    rate: float,
    progress: Callable[[int, int], None] | None,
) -> tuple[int, int]:
    """Redrive the period's dead letters; ``(redriven, skipped)``."""
    flt = period_filter(account_id, since, until)
    try:
        choice = choose_dead_letters(read_dead_letters(settings, flt, timeout=_TIMEOUT), flt)
        report = redrive_dead_letters(
            settings, choice.letters, rate=rate, progress=progress, due_in=CONFIG_GRACE_SECONDS
        )
    except DlqError as exc:  # RedriveError included: some records were not acknowledged
        window = f"--account {account_id} --since {iso_utc(since)} --until {iso_utc(until + 1)}"
        raise ReenableError(
            f"integration for account {account_id} enabled, but the dead letters of its "
            f"failure period were not all redriven: {exc}; redrive them with `stream-wfm dlq "
            f"redrive {window} --reason endpoint_disabled` and `--reason retries_exhausted`",
            enabled=True,
        ) from None
    return report.redriven, choice.duplicates + report.skipped


def reenable(
    settings: Settings,
    account_id: str,
    *,
    redrive: bool = True,
    rate: float = 50.0,
    progress: Callable[[int, int], None] | None = None,
    now: float | None = None,
) -> ReenableResult:
    """Enable ``account_id``'s integration again and, when the service had disabled it and
    ``redrive`` is true, redrive the dead letters of its failure period (see the module
    docstring) at ``rate`` per second, calling ``progress(done, total)`` as it goes.
    ``now``: the end of the failure period (unix seconds); default the moment the enabled
    config was acknowledged.

    Raises :class:`NoIntegrationError` when the account has no integration and
    :class:`ReenableError` when the broker or a topic cannot be read or written (its
    ``enabled`` says whether the integration was enabled before that).
    """
    if not rate > 0:
        raise ValueError("rate must be a positive number of records per second")
    config = _current_config(settings, account_id)
    if config.enabled:
        result = ReenableResult(account_id, False, None, 0, 0, already_enabled=True)
        _audit(result)
        return result
    by_service = config.disabled_reason is not None
    since: float | None = None
    if by_service and redrive:
        since = failure_period_start(
            _read_notices(settings), account_id, config.disabled_at, settings.auto_disable_seconds
        )
        if since is None:
            log.warning(
                "failure period unknown, nothing redriven", extra={"account_id": account_id}
            )
    _write_enabled(settings, config)
    until = time.time() if now is None else now
    result = ReenableResult(account_id, by_service, None, 0, 0)
    if since is not None:
        redriven, skipped = _redrive_period(settings, account_id, since, until, rate, progress)
        result = ReenableResult(account_id, by_service, since, redriven, skipped)
    _audit(result)
    return result


def _audit(result: ReenableResult) -> None:
    since = result.failing_since
    log.info(
        "config enable",
        extra={
            "audit": "config_enable",
            "account_id": result.account_id,
            "already_enabled": result.already_enabled,
            "disabled_by_service": result.was_disabled_by_service,
            "failing_since": None if since is None else iso_utc(since),
            "redriven": result.redriven,
            "skipped": result.skipped,
        },
    )
