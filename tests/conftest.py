"""Shared fixtures: a session-scoped real Tansu broker, topic/settings factories, receivers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from confluent_kafka import Producer

from stream_wfm.bench.workload import isolated_settings
from stream_wfm.kafka.admin import create_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings

# Test clusters: a group's first join takes half of session.timeout.ms on Tansu.
TEST_KAFKA = {"session_timeout_ms": "2000", "heartbeat_interval_ms": "300"}


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


def unique_settings(bootstrap_servers: str, **overrides: Any) -> Settings:
    """Settings for a test: unique topic names and group id, short retry tiers, loopback
    destinations allowed, a fast group join. The topics are not created."""
    values: dict[str, Any] = {
        "retry_backoff": "1s,2s",
        "topic_partitions": 4,
        "allow_private_destinations": True,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "shutdown_timeout": 10.0,
        "kafka": dict(TEST_KAFKA),
    }
    values.update(overrides)
    return isolated_settings(bootstrap_servers, f"t-{uuid.uuid4().hex[:8]}", **values)


@pytest.fixture
def settings_factory(broker: EmbeddedBroker) -> Callable[..., Settings]:
    """Settings with unique topic names and group id; the topics are created."""

    def make(**overrides: Any) -> Settings:
        settings = unique_settings(broker.bootstrap_servers, **overrides)
        create_topics(settings)
        return settings

    return make


def numbered_events(stop: int, agents: int, start: int = 0) -> list[dict[str, Any]]:
    """Agent-state events ``e-<i>`` for i in [start, stop), spread over ``agents`` agents,
    each carrying its per-agent sequence number in ``duration``."""
    return [
        {
            "account_id": "1",
            "agent_id": f"agent-{i % agents}",
            "event_type": "AVAILABLE",
            "duration": str(i // agents),
            "event_id": f"e-{i}",
        }
        for i in range(start, stop)
    ]


def first_seen_order_per_agent(requests: list[Received]) -> dict[str, list[int]]:
    """Per agent, the sequence numbers in the order first received (duplicates dropped, as a
    receiver de-duplicating by X-WFM-Event-Id would)."""
    seen: dict[str, list[int]] = {}
    for r in requests:
        body = r.json()
        seq = seen.setdefault(body["agent_id"], [])
        number = int(body["duration"])
        if number not in seq:
            seq.append(number)
    return seen


def produce(
    settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def produce_json(settings: Settings, topic: str, events: list[dict[str, Any]]) -> None:
    produce(
        settings, topic,
        [(f"{e.get('account_id')}:{e.get('agent_id') or e.get('call_id')}".encode(),
          orjson.dumps(e)) for e in events],
    )  # fmt: skip


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP receiver on 127.0.0.1 that records every request."""

    host: str
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    # Called per request; returns (status, headers) — default 200.
    respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda _r: (200, {})
    delay: float = 0.0
    # When set and not open, requests wait for it before being answered (and recorded).
    gate: asyncio.Event | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        rec = Received(
            request.method,
            request.path,
            request.query_string,
            dict(request.headers),
            body,
            time.time(),
        )
        if self.delay:
            await asyncio.sleep(self.delay)  # simulates a slow endpoint, not synchronisation
        if self.gate is not None:
            await self.gate.wait()
        status, headers = self.respond(rec)
        self.requests.append(rec)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=status, headers=headers, text="ok")

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: predicate(self.requests)), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"receiver condition not met within {timeout}s; got {len(self.requests)} "
                    f"requests: {[r.path + '?' + r.query for r in self.requests[-5:]]}"
                ) from None
        return self.requests

    async def wait_count(self, n: int, timeout: float = 20.0) -> list[Received]:
        return await self.wait_for(lambda reqs: len(reqs) >= n, timeout)


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def make(host: str = "127.0.0.1", **kwargs: Any) -> Receiver:
        rec = Receiver(host=host, **kwargs)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", rec.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        rec.port = runner.addresses[0][1]
        runners.append(runner)
        return rec

    yield make
    for runner in runners:
        await runner.cleanup()


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Wait for a condition with a deadline (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.02)


def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every record of ``topic``, read to partition EOF of every partition."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"read-{uuid.uuid4().hex}",
        "enable.partition.eof": True, "enable.auto.commit": False,
    })  # fmt: skip
    try:
        meta = consumer.list_topics(timeout=5).topics.get(topic)
        assert meta is not None, f"topic {topic} does not exist"
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        left = set(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
        assert not left, f"partitions {left} of {topic} not read to the end"
        return out
    finally:
        consumer.close()


def put_config(settings: Settings, config: dict[str, Any]) -> None:
    from stream_wfm.integrations.model import validate_config
    from stream_wfm.integrations.writer import ConfigWriter
    from stream_wfm.kafka.config import producer_config

    with ConfigWriter(settings.config_topic, producer_config(settings)) as writer:
        writer.put(validate_config(config))


def put_all_states_config(settings: Settings, url: str, account_id: str = "1") -> None:
    """An integration sending every agent state as JSON to ``url``."""
    put_config(
        settings,
        {
            "account_id": account_id,
            "send_all_agent_states": True,
            "send_body_as_json": True,
            "agent_event_url": url,
        },
    )


def delete_config(settings: Settings, account_id: str) -> None:
    from stream_wfm.integrations.writer import ConfigWriter
    from stream_wfm.kafka.config import producer_config

    with ConfigWriter(settings.config_topic, producer_config(settings)) as writer:
        writer.delete(account_id)


def settings_env(settings: Settings) -> dict[str, str]:
    """The STREAM_WFM_* environment that reproduces ``settings`` in a subprocess."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = f"STREAM_WFM_{name.upper()}"
        if name == "kafka":
            for prop, prop_value in value.items():
                env[f"STREAM_WFM_KAFKA__{prop.replace('.', '_').upper()}"] = str(prop_value)
        elif hasattr(value, "get_secret_value"):
            env[key] = value.get_secret_value()
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        else:
            env[key] = str(value)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``stream-wfm run`` as a real subprocess, with its own HTTP port."""

    def __init__(self, settings: Settings, **env: str) -> None:
        import os

        self.port = free_port()
        self.env = {
            **os.environ,
            **settings_env(settings),
            "STREAM_WFM_HTTP_PORT": str(self.port),
            "STREAM_WFM_LOG_FORMAT": "json",
            **env,
        }
        self.proc: Any = None
        self.log_path: Any = None

    def start(self) -> ServiceProcess:
        import os
        import subprocess
        import sys
        import tempfile

        fd, self.log_path = tempfile.mkstemp(prefix="stream-wfm-", suffix=".log")
        with os.fdopen(fd, "wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_wfm", "run"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        return self

    def logs(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def get(self, path: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        if status != 200:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    async def wait_ready(self, timeout: float = 30.0) -> ServiceProcess:
        await wait_until(
            lambda: (
                (self.proc.poll() is None and self.get("/readyz")[0] == 200)
                or self.proc.poll() is not None
            ),
            timeout,
            "service ready",
        )
        assert self.proc.poll() is None, f"service exited: {self.logs()[-2000:]}"
        return self

    def kill9(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                raise


@pytest.fixture
def service_process() -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def make(settings: Settings, **env: str) -> ServiceProcess:
        proc = ServiceProcess(settings, **env).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)
