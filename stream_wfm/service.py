"""The service: wires the config store, consumer thread, pipeline, lanes, transport,
retry/DLQ producer and the operator HTTP server, and runs them until stopped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from types import TracebackType

from aiohttp import web
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from stream_wfm.delivery.templates import TemplatedEntry
from stream_wfm.delivery.transport import Transport
from stream_wfm.delivery.transport_factory import create_transport
from stream_wfm.events import EventKind
from stream_wfm.health.auto_disable import FailureWatch
from stream_wfm.health.breaker import BreakerPolicy
from stream_wfm.health.publisher import HealthPublisher
from stream_wfm.integrations.store import ConfigStore
from stream_wfm.kafka.config import group_consumer_config, producer_config, reader_config
from stream_wfm.kafka.producer import AsyncProducer
from stream_wfm.ops.http import bound_port, build_app, start_server
from stream_wfm.ops.metrics import Metrics
from stream_wfm.pipeline.consumer import ConsumerThread
from stream_wfm.pipeline.lanes import Dispatcher
from stream_wfm.pipeline.order_scan import scan_waiting
from stream_wfm.pipeline.pipeline import Pipeline
from stream_wfm.retry.writer import RetryWriter
from stream_wfm.settings import Settings

log = logging.getLogger(__name__)

# The consumer thread must return from a poll at least this often to count as alive.
LIVENESS_STALL_SECONDS = 60.0


def make_transport(settings: Settings) -> Transport:
    """The HTTP transport ``STREAM_WFM_HTTP_TRANSPORT`` names."""
    return create_transport(
        settings.http_transport,
        max_in_flight=settings.max_in_flight,
        max_in_flight_per_host=settings.max_in_flight_per_host,
        allow_private_destinations=settings.allow_private_destinations,
    )


class Service:
    """``async with Service(settings) as svc: await svc.run(stop_event)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.transport = transport or make_transport(settings)
        self.store = ConfigStore(
            settings.config_topic,
            reader_config(settings, "stream-wfm-config"),
            entry_type=TemplatedEntry,
            on_invalid=self.metrics.config_invalid_records.inc,
            on_change=self._config_changed,
        )
        self.metrics.config_accounts.set_function(lambda: len(self.store))
        self.producer = AsyncProducer(producer_config(settings))
        # The consumers are created on their own threads; build one here, once, so that an
        # invalid consumer-only librdkafka property fails start-up with a clear error
        # instead of killing a thread. It never subscribes: closing it is immediate.
        Consumer(group_consumer_config(settings)).close()
        self._consumer: ConsumerThread | None = None
        self._pipeline: Pipeline | None = None
        self._consumer_starter: asyncio.Task[None] | None = None
        self._health_tasks: list[asyncio.Task[None]] = []
        self._http: web.AppRunner | None = None
        self._last_progress = time.time()
        self._joined = False
        self._stopped = False
        self.http_port: int | None = None

    # --- health -----------------------------------------------------------------------
    def liveness(self) -> str | None:
        stalled = time.time() - self._last_progress
        if self._consumer is not None and stalled > LIVENESS_STALL_SECONDS:
            return f"consumer thread made no progress for {stalled:.0f}s"
        return None

    def readiness(self) -> str | None:
        if not self.store.ready:
            return self.store.status
        consumer = self._consumer
        if consumer is None:
            return "consumer not started"
        if consumer.fatal_error is not None:
            return f"consumer failed: {consumer.fatal_error}"
        if consumer.broker_error is not None:
            return f"Kafka not reachable: {consumer.broker_error}"
        if not self._joined:
            return f"consumer has not joined group {self.settings.group_id} yet"
        return None

    def _config_changed(self, _account_id: str, entry: object | None) -> None:
        # Runs on the config store's thread; prometheus-client counters are thread-safe.
        self.metrics.config_records.labels("delete" if entry is None else "upsert").inc()

    def _set_lag(self, lag: dict[tuple[str, int], int], gone: list[tuple[str, int]]) -> None:
        gauge = self.metrics.consumer_lag
        for (topic, partition), value in lag.items():
            gauge.labels(topic, str(partition)).set(value)
        for topic, partition in gone:  # revoked: stop reporting its lag from here
            gauge.remove(topic, str(partition))

    def _progress(self, now: float) -> None:
        self._last_progress = now
        self.metrics.last_progress.set(now)

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> Service:
        settings = self.settings
        loop = asyncio.get_running_loop()
        self.metrics.ready.set_function(lambda: 1.0 if self.readiness() is None else 0.0)
        app = build_app(self.registry, self.liveness, self.readiness)
        self._http = await start_server(app, settings.http_host, settings.http_port)
        self.http_port = bound_port(self._http)
        self.store.start()
        await self.producer.start()
        writer = RetryWriter(
            self.producer,
            retry_topic_prefix=settings.retry_topic_prefix,
            tiers=settings.retry_tiers,
            dlq_topic=settings.dlq_topic,
            metrics=self.metrics,
            clock=time.time,
        )
        retry_topics = settings.retry_topics()
        # How long a rebalance may wait for revoked partitions' work (half of it draining
        # queued events, the rest for requests under way).
        revoke_timeout = min(settings.shutdown_timeout, 30.0)
        pipeline = self._pipeline = Pipeline(
            store=self.store,
            dispatcher_factory=lambda on_outcome: Dispatcher(
                self.transport,
                on_outcome,
                lanes_per_host=min(settings.lanes, settings.max_in_flight_per_host),
                max_in_flight=settings.max_in_flight,
                clock=time.perf_counter,
            ),
            writer=writer,
            metrics=self.metrics,
            topic_kinds={
                settings.agent_events_topic: EventKind.AGENT,
                settings.call_events_topic: EventKind.CALL,
            },
            retry_topics=set(retry_topics),
            max_buffered=settings.max_buffered_events,
            order_keys_in_memory=settings.order_keys_in_memory,
            breaker=BreakerPolicy(
                window=settings.breaker_window_seconds,
                min_attempts=settings.breaker_min_attempts,
                failure_ratio=settings.breaker_failure_ratio,
                open_seconds=settings.breaker_open_seconds,
            ),
            revoke_drain=revoke_timeout / 2,
        )
        self.health_publisher = HealthPublisher(
            pipeline.endpoints,
            self.producer,
            topic=settings.health_topic,
            instance_id=settings.health_instance_id,
            clock=time.time,
        )
        self.failure_watch = FailureWatch(
            pipeline.endpoints,
            self.store,
            self.producer,
            self.metrics,
            config_topic=settings.config_topic,
            notices_topic=settings.notices_topic,
            disable_after=settings.auto_disable_seconds,
            clock=time.time,
        )
        self._health_tasks = [
            loop.create_task(self.health_publisher.run()),
            loop.create_task(self.failure_watch.run()),
        ]
        # Consume only once the config is loaded (an event joined with a config that is not
        # loaded yet would be filtered as no_integration). start() does not wait for it, so
        # a stop (SIGTERM) is honoured even while the config topic is missing.
        self._consumer_starter = loop.create_task(
            self._start_consumer_when_config_loaded(pipeline, retry_topics, revoke_timeout)
        )
        return self

    async def _start_consumer_when_config_loaded(
        self, pipeline: Pipeline, retry_topics: list[str], revoke_timeout: float
    ) -> None:
        waited = 0
        while not await asyncio.to_thread(self.store.wait_ready, 1.0):
            waited += 1
            if waited % 5 == 0:
                log.info("waiting for the config topic", extra={"status": self.store.status})
        settings = self.settings
        consumer = self._consumer = ConsumerThread(
            group_consumer_config(settings),
            [settings.agent_events_topic, settings.call_events_topic, *retry_topics],
            asyncio.get_running_loop(),
            _JoinWatch(pipeline, self),
            revoke_timeout=revoke_timeout,
            on_progress=self._progress,
            on_commit_result=lambda ok: self.metrics.commits.labels("ok" if ok else "error").inc(),
            on_lag=self._set_lag,
            input_topics=frozenset((settings.agent_events_topic, settings.call_events_topic)),
            hold_limit=settings.backpressure_hold_seconds,
            on_assign_scan=(
                functools.partial(
                    scan_waiting,
                    reader_config=reader_config(settings, "stream-wfm-order"),
                    tier_of={topic: i for i, topic in enumerate(retry_topics)},
                    timeout=revoke_timeout,
                ),
                pipeline.on_waiting,
            ),
        )
        pipeline.attach(consumer)
        consumer.start()
        log.info(
            "stream-wfm started",
            extra={
                "group_id": settings.group_id,
                "bootstrap_servers": settings.bootstrap_servers,
                "http_port": self.http_port,
                "accounts": len(self.store),
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await stop.wait()
        await self.stop()

    async def stop(self) -> None:
        """Drain in-flight deliveries, commit, close; within the shutdown timeout. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + self.settings.shutdown_timeout
        log.info(
            "stopping: draining in-flight deliveries",
            extra={"timeout": self.settings.shutdown_timeout},
        )
        starter = self._consumer_starter
        if starter is not None and not starter.done():
            starter.cancel()  # still waiting for the config: nothing consumed yet
            await asyncio.gather(starter, return_exceptions=True)
        health, self._health_tasks = self._health_tasks, []
        for task in health:
            task.cancel()
        await asyncio.gather(*health, return_exceptions=True)
        consumer, pipeline = self._consumer, self._pipeline
        if consumer is not None and pipeline is not None:
            consumer.stop_fetching()
            drained = await pipeline.dispatcher.drain(max(0.0, deadline - time.monotonic() - 2))
            if not drained:
                log.warning(
                    "shutdown timeout reached; unfinished events stay uncommitted and "
                    "will be delivered again after restart"
                )
                await pipeline.dispatcher.cancel()
            await self.producer.flush(max(0.5, deadline - time.monotonic() - 1))
            await pipeline.stop()
            consumer.stop(pipeline.final_offsets())
            await consumer.wait_closed(max(1.0, deadline - time.monotonic()))
        await self.producer.stop(1.0)
        self.store.stop()
        await self.transport.close()
        if self._http is not None:
            await self._http.cleanup()
        log.info("stopped")

    async def __aenter__(self) -> Service:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class _JoinWatch:
    """Forwards consumer-thread callbacks to the pipeline and notes the first assignment."""

    def __init__(self, pipeline: Pipeline, service: Service) -> None:
        self._pipeline = pipeline
        self._service = service
        self.on_batch = pipeline.on_batch
        self.on_revoked = pipeline.on_revoked

    def on_assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._service._joined = True
        self._pipeline.on_assigned(partitions)
