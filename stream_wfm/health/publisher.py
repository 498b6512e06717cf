"""Publishing endpoint health (docs/contract.md §10).

Every :data:`INTERVAL` seconds, :class:`HealthPublisher` writes one health record per
account whose endpoints this instance used since the last time (or whose breaker is
not closed) to the compacted health topic, key ``{account_id}/{instance_id}``. A
record that cannot be written is logged and not written again: the next one follows
within the interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from stream_wfm.health.endpoints import Endpoints
from stream_wfm.health.records import HealthRecord, encode_health_record, health_key, iso_utc
from stream_wfm.kafka.producer import AsyncProducer

log = logging.getLogger(__name__)

__all__ = ["INTERVAL", "HealthPublisher"]

#: Seconds between two publications (at most one record per endpoint in that time).
INTERVAL: Final = 10.0


class HealthPublisher:
    """Writes the endpoints' health records. Runs on the event loop."""

    def __init__(
        self,
        endpoints: Endpoints,
        producer: AsyncProducer,
        *,
        topic: str,
        instance_id: str,
        clock: Callable[[], float],
        interval: float = INTERVAL,
    ) -> None:
        self._endpoints = endpoints
        self._producer = producer
        self._topic = topic
        self._instance_id = instance_id
        self._clock = clock
        self.interval = interval
        self._failing = False  # the last write failed (logged once until one succeeds)

    async def run(self) -> None:
        """Publish every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.publish()

    def publish(self) -> int:
        """Write the records due now; returns how many."""
        reports = self._endpoints.take_reports()
        at = iso_utc(self._clock())
        for account_id, endpoints in reports.items():
            record = HealthRecord(account_id, self._instance_id, at, endpoints)
            written = self._producer.produce(
                self._topic,
                encode_health_record(record),
                key=health_key(account_id, self._instance_id).encode(),
            )
            written.add_done_callback(self._written)
        return len(reports)

    def _written(self, future: asyncio.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is None:
            self._failing = False
        elif not self._failing:
            self._failing = True
            log.warning(
                "could not write a health record (run: stream-wfm topics create)",
                extra={"topic": self._topic, "error": str(error)},
            )
