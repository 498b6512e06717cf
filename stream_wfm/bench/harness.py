"""What every bench scenario needs: the run's options, its broker and receiver, the settings,
environment and consumer config of one service run, the service subprocess, and waiting for
progress with a stall limit."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stream_wfm.bench.receiver import ReceiverProcess
from stream_wfm.bench.service_proc import ServiceProcess
from stream_wfm.bench.workload import ACCOUNT_ID, integration, isolated_settings, write_integrations
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.config import group_consumer_config
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings
from stream_wfm.terminal.progress import Phases

KAFKA_TEST = {"session_timeout_ms": "2000", "heartbeat_interval_ms": "300"}
PARTITIONS = 6
STALL_SECONDS = 30.0


@dataclass(frozen=True)
class BenchOptions:
    events: int = 100_000
    filtered_events: int | None = None  # default: 3 x events
    rate: float = 1000.0
    duration: float = 3.0
    concurrency: int = 64
    selected_fraction: float = 1.0
    format: str = "json"  # the format of the main delivery scenario
    transport: str | None = None  # None: the service's default
    integrations: int = 100_000

    @property
    def filtered_count(self) -> int:
        return self.filtered_events if self.filtered_events is not None else 3 * self.events


def default_transport() -> str:
    return str(Settings.model_fields["http_transport"].default)


class Harness:
    """One run's embedded broker and receiver, and the service runs scenarios start on them."""

    def __init__(
        self, options: BenchOptions, progress: Phases, bootstrap: str, receiver: ReceiverProcess
    ) -> None:
        self.options = options
        self.progress = progress
        self.bootstrap = bootstrap
        self.receiver = receiver
        self.tag = uuid.uuid4().hex[:8]

    @classmethod
    @contextlib.contextmanager
    def started(cls, options: BenchOptions, progress: Phases) -> Iterator[Harness]:
        """Start the embedded broker and the minimal receiver (its own process)."""
        with EmbeddedBroker() as broker, ReceiverProcess() as receiver:
            yield cls(options, progress, broker.bootstrap_servers, receiver)

    def name(self, suffix: str) -> str:
        """A topic, group or run name of this run only."""
        return f"bench-{self.tag}-{suffix}"

    def settings(self, run: str, agent_topic: str) -> Settings:
        return isolated_settings(
            self.bootstrap, self.name(run), agent_events_topic=agent_topic,
            topic_partitions=PARTITIONS,
        )  # fmt: skip

    def env(self, s: Settings) -> dict[str, str]:
        o = self.options
        env = {
            "STREAM_WFM_BOOTSTRAP_SERVERS": self.bootstrap,
            "STREAM_WFM_GROUP_ID": s.group_id,
            "STREAM_WFM_AGENT_EVENTS_TOPIC": s.agent_events_topic,
            "STREAM_WFM_CALL_EVENTS_TOPIC": s.call_events_topic,
            "STREAM_WFM_CONFIG_TOPIC": s.config_topic,
            "STREAM_WFM_RETRY_TOPIC_PREFIX": s.retry_topic_prefix,
            "STREAM_WFM_DLQ_TOPIC": s.dlq_topic,
            "STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS": "true",
            "STREAM_WFM_KAFKA__SESSION_TIMEOUT_MS": KAFKA_TEST["session_timeout_ms"],
            "STREAM_WFM_KAFKA__HEARTBEAT_INTERVAL_MS": KAFKA_TEST["heartbeat_interval_ms"],
            "STREAM_WFM_LOG_LEVEL": "WARNING",
            "STREAM_WFM_MAX_IN_FLIGHT": str(o.concurrency),
            "STREAM_WFM_MAX_IN_FLIGHT_PER_HOST": str(o.concurrency),
        }
        if o.transport is not None:
            env["STREAM_WFM_HTTP_TRANSPORT"] = o.transport
        return env

    def consumer_config(self, s: Settings, group: str) -> dict[str, Any]:
        """The service's group consumer settings, as the service would get them."""
        conf = group_consumer_config(s)
        conf.update({k.replace("_", "."): v for k, v in KAFKA_TEST.items()})
        conf["group.id"] = group
        conf.pop("logger", None)  # a Python object: the raw consumer runs in another process
        return conf

    def prepare(
        self,
        run: str,
        topic: str,
        fmt: str,
        filler: int = 0,
        signing_secrets: tuple[str, ...] = (),
    ) -> Settings:
        """Settings and topics of one service run, with its integration (and ``filler`` more)
        posting ``fmt`` to the receiver, signed with ``signing_secrets`` when given."""
        s = self.settings(run, topic)
        create_topics(s)
        url = self.receiver.url("/agent")
        cfg = integration(ACCOUNT_ID, url, fmt == "json", signing_secrets)
        write_integrations(self.bootstrap, s.config_topic, [cfg], filler=filler)
        return s

    @contextlib.contextmanager
    def service(self, s: Settings, ready_timeout: float = 60.0) -> Iterator[ServiceProcess]:
        """``stream-wfm run`` with the settings ``s``, once ready; a failure carries its log."""
        with ServiceProcess(self.env(s)) as svc:
            svc.block_until_ready(ready_timeout)
            try:
                yield svc
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; service log:\n{svc.log_tail()}") from None

    def wait(self, what: Callable[[], int], total: int, stall: float = STALL_SECONDS) -> int:
        """Poll ``what()`` until it reaches ``total``; fail after ``stall`` s without progress."""
        last, last_change = -1, time.monotonic()
        while True:
            now_count = what()
            self.progress.update(now_count)
            if now_count >= total:
                return now_count
            if now_count != last:
                last, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > stall:
                raise RuntimeError(f"no progress for {stall:g}s at {now_count}/{total}")
            time.sleep(0.05)  # polling progress with a stall deadline
