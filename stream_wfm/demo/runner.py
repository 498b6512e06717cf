"""``stream-wfm demo``: embedded broker, demo receiver, sample integrations, the real
service in this process, a replayed stream of platform events, a progress bar and a
summary.

The demo's settings come from its own values only (the environment and ``.env``
are ignored), so a shell configured for a real cluster cannot leak into it.
Retry tiers are short (``2s,4s``) and the consumer group's session timeout is
2 s, so the first group join takes about a second on the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TextIO

from confluent_kafka import KafkaError, Message, Producer
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from stream_wfm.demo.receiver import DemoReceiver
from stream_wfm.demo.samples import (
    SampleIntegration,
    SampleRecord,
    sample_integrations,
    sample_stream,
)
from stream_wfm.demo.summary import (
    ServiceCounts,
    endpoint_rows,
    render_samples,
    render_summary,
    service_counts,
)
from stream_wfm.errors import StreamWfmError
from stream_wfm.events import EventKind
from stream_wfm.integrations.model import validate_config
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.config import producer_config
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.retry.dead_letters import DlqFilter, read_dead_letters
from stream_wfm.service import Service
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import ProgressBar

DEMO_RETRY_BACKOFF: Final = "2s,4s"
DEMO_KAFKA: Final = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300"}
RECEIVER_HOST: Final = "127.0.0.1"
EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_INTERRUPTED: Final = 130


class DemoError(StreamWfmError):
    """The demo could not run (e.g. the replayed events were not acknowledged)."""


@dataclass(frozen=True)
class DemoOptions:
    rate: float = 20.0  # replayed events per second; 0: as fast as possible
    keep_running: bool = False
    verbose: bool = False
    timeout: float = 90.0  # seconds to wait for every event to be accounted for


class _DemoSettings(Settings):
    """:class:`Settings` built from init values only: no environment, no ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(bootstrap_servers: str, *, quiet_librdkafka: bool = True) -> Settings:
    """The demo's settings: default topic names, short retry tiers, a fast group join,
    webhooks to loopback allowed (the demo receiver is on 127.0.0.1)."""
    settings = _DemoSettings(
        bootstrap_servers=bootstrap_servers,
        retry_backoff=DEMO_RETRY_BACKOFF,
        topic_partitions=3,
        allow_private_destinations=True,
        http_host="127.0.0.1",
        http_port=0,
        shutdown_timeout=10.0,
        kafka=DEMO_KAFKA,
        log_format="text",
    )
    if not quiet_librdkafka:
        return settings
    # The consumer's session timeout reaches every client, and librdkafka warns about it
    # on each producer. Its `log_level` cannot be spelled as STREAM_WFM_KAFKA__<NAME> (the
    # underscore would become a dot), so it is added after validation.
    return settings.model_copy(update={"kafka": {**settings.kafka, "log_level": "3"}})


def write_integrations(settings: Settings, integrations: Sequence[SampleIntegration]) -> None:
    """Validate and write the sample integrations to the config topic."""
    config = producer_config(settings, "stream-wfm-demo")
    with ConfigWriter(settings.config_topic, config) as writer:
        for integration in integrations:
            writer.put(validate_config(integration.config, integration.account_id))


class Replayer:
    """Produces the sample records at ``rate`` per second (in a thread); ``produced``
    says how far it got. :meth:`cancel` stops it early."""

    def __init__(self, settings: Settings, records: Sequence[SampleRecord], rate: float) -> None:
        self._settings = settings
        self._records = records
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._cancel = threading.Event()
        self.produced = 0

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        settings = self._settings
        topics = {EventKind.AGENT: settings.agent_events_topic,
                  EventKind.CALL: settings.call_events_topic}  # fmt: skip
        producer = Producer(producer_config(settings, "stream-wfm-demo-replay"))
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        next_at = time.monotonic()
        for record in self._records:
            delay = next_at - time.monotonic()
            if delay > 0 and self._cancel.wait(delay):  # pacing the replay, cancellable
                break
            if self._cancel.is_set():
                break
            next_at += self._interval
            producer.produce(
                topics[record.kind], key=record.key, value=record.value, on_delivery=on_delivery
            )
            producer.poll(0)
            self.produced += 1
        unacknowledged = producer.flush(30)
        producer.close()
        if unacknowledged or errors:
            raise DemoError(f"the broker did not acknowledge the replayed events: {errors[:1]}")


class Demo:
    """One run of the demo; :meth:`run` returns the exit code."""

    def __init__(self, options: DemoOptions, out: TextIO, err: TextIO) -> None:
        self.options = options
        self.out = out
        self.err = err
        self._started = time.monotonic()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def run(self, stop: asyncio.Event) -> int:
        self.say("stream-wfm demo: contact-center events to WFM webhooks, end to end on this "
                 "machine")  # fmt: skip
        self.say()
        broker = await asyncio.to_thread(EmbeddedBroker().start)
        try:
            outcome = await self._run_on(broker, stop)
        finally:
            # The service's producer is only flushed by Service.stop(), not closed: it lives
            # until garbage-collected (the service's objects form cycles). Collect it
            # before the broker goes, or it logs reconnect errors after the summary.
            gc.collect()
            await asyncio.to_thread(broker.stop)
        self.say("Stopped: the service drained and committed; receiver and broker shut down.")
        return outcome

    async def _run_on(self, broker: EmbeddedBroker, stop: asyncio.Event) -> int:
        settings = demo_settings(broker.bootstrap_servers,
                                 quiet_librdkafka=not self.options.verbose)  # fmt: skip
        self.say(f"[1/6] Kafka: the embedded development broker (Tansu, in memory) on "
                 f"{broker.bootstrap_servers}")  # fmt: skip
        await asyncio.to_thread(create_topics, settings)
        self.say(f"[2/6] Topics: {settings.agent_events_topic}, {settings.call_events_topic}, "
                 f"{settings.config_topic} (compacted), retry tiers "
                 f"{', '.join(settings.retry_topics())}, {settings.dlq_topic}")  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            receiver = DemoReceiver()
            base_url = f"http://{RECEIVER_HOST}:{await receiver.start(RECEIVER_HOST, 0)}"
            stack.push_async_callback(receiver.close)
            self.say(f"[3/6] Webhook receiver: {base_url} (stands in for the WFM vendors' "
                     f"endpoints)")  # fmt: skip
            integrations = sample_integrations(base_url)
            await asyncio.to_thread(write_integrations, settings, integrations)
            self._show_integrations(settings, integrations)
            service = await stack.enter_async_context(Service(settings))
            self.say(f"[5/6] Service: stream-wfm runs in this process (consumer group "
                     f"{settings.group_id}; metrics on http://127.0.0.1:{service.http_port}"
                     f"/metrics)")  # fmt: skip
            records = sample_stream()
            outcome = await self._replay(service, settings, records, stop)
            if outcome == EXIT_INTERRUPTED:
                self.say("Interrupted: stopping.")
                return outcome
            await service.producer.flush(5.0)  # every dead letter acknowledged before reading
            await self._summary(settings, integrations, receiver, service, len(records))
            if self.options.keep_running and outcome == EXIT_OK:
                self._show_keep_running(settings, service, base_url)
                await stop.wait()
        return outcome

    async def _replay(
        self,
        service: Service,
        settings: Settings,
        records: Sequence[SampleRecord],
        stop: asyncio.Event,
    ) -> int:
        """Replay ``records`` and wait until every one is accounted for."""
        rate = self.options.rate
        self.say(f"[6/6] Replaying {len(records)} platform records (logins, state changes, "
                 f"end-call events, logouts; 2 malformed on purpose)"
                 + (f" at {rate:g}/s" if rate > 0 else ""))  # fmt: skip
        replayer = Replayer(settings, records, rate)
        replay = asyncio.ensure_future(asyncio.to_thread(replayer.run))
        try:
            outcome = await self._watch(service, settings, replayer, len(records), stop)
        finally:
            replayer.cancel()
            await asyncio.gather(replay, return_exceptions=True)
        error = replay.exception()
        if error is not None:
            raise DemoError(f"replaying the events failed: {error}")
        accounted = service_counts(service.registry, settings).accounted
        if outcome == EXIT_OK:
            self.say(f"All {len(records)} records accounted for after "
                     f"{time.monotonic() - self._started:.1f} s (delivered, filtered or "
                     f"dead-lettered).")  # fmt: skip
        elif outcome == EXIT_INCOMPLETE:
            self.say(f"Only {accounted} of {len(records)} records were accounted for within "
                     f"{self.options.timeout:g} s; see the summary.")  # fmt: skip
        return outcome

    def _show_integrations(
        self, settings: Settings, integrations: Sequence[SampleIntegration]
    ) -> None:
        self.say(f"[4/6] Integrations written to {settings.config_topic}:")
        width = max(len(i.company) for i in integrations)
        for integration in integrations:
            self.say(f"        {integration.account_id}  {integration.company:<{width}}  "
                     f"{integration.story}")  # fmt: skip
        self.say("      Webhooks to loopback and private addresses are refused by default; the "
                 "demo sets")  # fmt: skip
        self.say("      STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS=true because its receiver is on "
                 "127.0.0.1.")  # fmt: skip

    async def _watch(
        self,
        service: Service,
        settings: Settings,
        replayer: Replayer,
        expected: int,
        stop: asyncio.Event,
    ) -> int:
        """Show progress until every record is accounted for, the deadline, or a signal."""
        bar = ProgressBar("events", self.err)
        deadline = time.monotonic() + self.options.timeout
        try:
            while True:
                counts = service_counts(service.registry, settings)
                bar.update(counts.accounted, expected, _progress_text(counts, replayer.produced))
                if counts.accounted >= expected:
                    return EXIT_OK
                if stop.is_set():
                    return EXIT_INTERRUPTED
                if time.monotonic() > deadline:
                    return EXIT_INCOMPLETE
                with contextlib.suppress(TimeoutError):  # the screen refresh interval
                    await asyncio.wait_for(stop.wait(), 0.1)
        finally:
            bar.close()

    async def _summary(
        self,
        settings: Settings,
        integrations: Sequence[SampleIntegration],
        receiver: DemoReceiver,
        service: Service,
        expected: int,
    ) -> None:
        counts = service_counts(service.registry, settings)
        letters = await asyncio.to_thread(read_dead_letters, settings, DlqFilter())
        rows = endpoint_rows(integrations, receiver.endpoints, letters)
        unrouted: dict[str, int] = {}
        for dl in letters:
            if dl.record.account_id is None:
                unrouted[dl.record.reason] = unrouted.get(dl.record.reason, 0) + 1
        self.say()
        self.say(render_summary(rows, counts, unrouted, expected))
        self.say()
        self.say(render_samples(rows))
        self.say()

    def _show_keep_running(self, settings: Settings, service: Service, base_url: str) -> None:
        lines = [
            "The demo keeps running; press Ctrl-C to stop it. In another terminal:",
            "",
            f"  export STREAM_WFM_BOOTSTRAP_SERVERS={settings.bootstrap_servers} "
            f"STREAM_WFM_RETRY_BACKOFF={settings.retry_backoff}",
            "  stream-wfm config list          # the sample integrations",
            "  stream-wfm dlq list             # the dead letters",
            "  stream-wfm dlq redrive --dry-run",
            "  STREAM_WFM_CONSOLE_PASSWORD=choose-a-password "
            "STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS=true stream-wfm console",
            "                                  # the admin console, http://127.0.0.1:9109",
            f"  curl http://127.0.0.1:{service.http_port}/metrics",
            f"  curl {base_url}/               # what the receiver got",
        ]
        for line in lines:
            self.say(line)


def _progress_text(counts: ServiceCounts, produced: int) -> str:
    return (
        f"replayed {produced}  delivered {counts.delivered}  "
        f"filtered {sum(counts.filtered.values())}  "
        f"dead-lettered {sum(counts.dead_letters.values())}  "
        f"retries {sum(counts.retries_scheduled.values())}"
    )
