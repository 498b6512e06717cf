"""Offset commits on the consumer thread: results, the committed offsets, lag.

The loop decides *what* may be committed (:mod:`stream_wfm.pipeline.offsets`);
the consumer thread commits it (asynchronously in steady state, synchronously
before a revoke and at shutdown). :class:`CommitLog` records what the group
acknowledged, reports each result, and computes the lag per partition from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream_wfm.pipeline.commands import TP

log = logging.getLogger(__name__)


class _Committer(Protocol):
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int]: ...


class CommitLog:
    """Committed offsets of this member's partitions; ``on_result(ok)`` after each commit."""

    def __init__(self, on_result: Callable[[bool], None] | None = None) -> None:
        self._on_result = on_result
        self.committed: dict[TP, int] = {}

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's ``on_commit`` callback (asynchronous commits)."""
        ok = err is None
        if ok:
            self._record(partitions)
        elif err is not None and err.code() != KafkaError._NO_OFFSET:
            log.warning("offset commit failed", extra={"error": str(err)})
        self._report(ok)

    def commit_sync(self, consumer: _Committer, offsets: list[TopicPartition], when: str) -> None:
        """Commit and wait for the answer (before a revoke, at shutdown)."""
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed", extra={"when": when, "error": str(exc.args[0])})
            self._report(False)
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
        self._record(result)
        log.info("offsets committed", extra={"when": when, "offsets": _fmt_offsets(result)})
        self._report(not failed)

    def forget(self, partitions: Iterable[TP]) -> None:
        for tp in partitions:
            self.committed.pop(tp, None)

    def lag(self, consumer: _Committer, assignment: Iterable[TP]) -> dict[TP, int]:
        """Lag per assigned partition: the end offset this consumer has seen (cached from
        fetch responses, no broker round trip) minus the committed offset."""
        lag: dict[TP, int] = {}
        for tp in assignment:
            low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            if high < 0:
                continue
            committed = self.committed.get(tp, low if low >= 0 else 0)
            lag[tp] = max(0, high - committed)
        return lag

    def _record(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self.committed[(tp.topic, tp.partition)] = tp.offset

    def _report(self, ok: bool) -> None:
        if self._on_result is not None:
            self._on_result(ok)


def _fmt_offsets(tps: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in tps)
