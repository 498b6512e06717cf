"""Auto-disable: the integration of an endpoint failing for too long is disabled, and a
notice says so (docs/contract.md §10).

:meth:`FailureWatch.check` runs every second over the endpoints whose breaker is open
or half-open:

* an endpoint whose account's config changed since its failure period began (a fixed
  URL, a re-enable, an integration deleted or disabled by an operator) is forgotten:
  its breaker closes and a new period starts with the next event;
* one whose breaker has been open, with no successful probe, for
  ``STREAM_WFM_AUTO_DISABLE_AFTER`` gets its integration disabled: first the notice
  (``integration.disabled``, its ``notice_id`` derived from the config record in
  force, so that every instance and every retry names the same period alike), then the
  config written back with ``enabled: false``, ``disabled_reason: "endpoint_failing"``
  and ``disabled_at``. Both are written only if the account's config is still the
  record the period began with, read just before each write: several instances may see
  the same endpoint fail, and none may undo an operator's change or flap the config.
  A failed write is tried again at a later check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.health.endpoints import Endpoint, Endpoints
from stream_wfm.health.records import Notice, encode_notice, iso_utc, notice_id_for
from stream_wfm.integrations.model import config_to_record_value
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.kafka.producer import AsyncProducer, ProduceError
from stream_wfm.ops.metrics import Metrics

log = logging.getLogger(__name__)

__all__ = ["FailureWatch"]

DISABLED_REASON = "endpoint_failing"


class FailureWatch:
    """Watches failing endpoints. Runs on the event loop."""

    def __init__(
        self,
        endpoints: Endpoints,
        store: ConfigStore[TemplatedEntry],
        producer: AsyncProducer,
        metrics: Metrics,
        *,
        config_topic: str,
        notices_topic: str,
        disable_after: float | None,
        clock: Callable[[], float],
    ) -> None:
        """``disable_after``: seconds (None: never disable)."""
        self._endpoints = endpoints
        self._store = store
        self._producer = producer
        self._metrics = metrics
        self._config_topic = config_topic
        self._notices_topic = notices_topic
        self._disable_after = disable_after
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, interval: float = 1.0) -> None:
        """Check every ``interval`` seconds until cancelled."""
        try:
            while True:
                await asyncio.sleep(interval)
                self.check()
        finally:
            for task in self._tasks:
                task.cancel()

    def check(self) -> None:
        now = self._clock()
        after = self._disable_after
        for endpoint in self._endpoints.failing():
            entry = self._store.get(endpoint.account_id)
            if entry is None or entry.version != endpoint.version or not entry.enabled:
                self._endpoints.forget(endpoint)
                continue
            if after is None or endpoint.disabling:
                continue
            if endpoint.breaker.open_seconds(now) >= after:
                endpoint.disabling = True
                task = asyncio.get_running_loop().create_task(self._disable(endpoint, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _disable(self, endpoint: Endpoint, entry: TemplatedEntry) -> None:
        account_id = endpoint.account_id
        key = account_id.encode()
        config = entry.config
        now = self._clock()
        since = endpoint.breaker.failing_since
        notice = Notice(
            notice_id=notice_id_for(account_id, endpoint.kind.value, entry.version),
            account_id=account_id,
            kind=endpoint.kind.value,
            url=config.url_for(endpoint.kind),
            failing_since=iso_utc(now if since is None else since),
            last_error=endpoint.last_error,
            at=iso_utc(now),
        )
        extra = {
            "account_id": account_id,
            "kind": endpoint.kind.value,
            "failing_since": notice.failing_since,
            "last_error": notice.last_error,
            "notice_id": notice.notice_id,
        }
        error: ProduceError | None = None
        try:
            if self._store.get(account_id) is not entry:
                return  # changed meanwhile: the next check forgets the endpoint
            await self._producer.produce(self._notices_topic, encode_notice(notice), key=key)
            if self._store.get(account_id) is not entry:
                return
            disabled = config.model_copy(
                update={
                    "enabled": False,
                    "disabled_reason": DISABLED_REASON,
                    "disabled_at": iso_utc(now),
                }
            )
            await self._producer.produce(
                self._config_topic, config_to_record_value(disabled), key=key
            )
        except ProduceError as exc:
            error = exc
        if error is not None:
            endpoint.disabling = False  # tried again at a later check
            log.error(
                "could not disable a failing integration", extra={**extra, "error": str(error)}
            )
            return
        self._metrics.integrations_auto_disabled.inc()
        log.warning(
            "integration disabled: its endpoint kept failing; its events are dead-lettered "
            "as endpoint_disabled until it is re-enabled (stream-wfm config enable)",
            extra=extra,
        )
