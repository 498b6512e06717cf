"""What the bench produces: realistic agent-state events, integration configs (unsigned, or
signed with :data:`SIGNING_SECRETS`), sample requests.

Events are ~430-byte agent-state events (docs/contract.md §2 field order) of many agents of
one account, keyed ``{account_id}:{agent_id}``. A *selected* event is in a
default state (delivered under the bench integration, which selects default
states only); an unselected one is in a custom state (``ON BREAK`` with the
aux state ``Coaching Session``) and is filtered out. Each event's ``event_id``
is unique; in rate mode it also carries the producer's send time
(``lat-{n}-{monotonic_ns}``) so the receiver can tell the latency from the
``X-WFM-Event-Id`` header, whatever the body format.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson
from confluent_kafka import Producer

from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import validate_config
from stream_wfm.settings import Settings

ACCOUNT_ID: Final = "15300002"
AGENTS: Final = 2000
DEFAULT_STATES: Final = (
    "AVAILABLE", "ON BREAK", "AWAY", "LUNCH", "TRAINING", "ENGAGED", "WORKING", "TRANSITION",
)  # fmt: skip
AUTH_HEADER: Final = ("Authorization", "Basic YmVuY2g6YmVuY2gtc2VjcmV0LXZhbHVl")
#: Signing secrets of the signed runs (32-byte keys, like the console's), newest first.
SIGNING_SECRETS: Final = tuple(
    "whsec_" + base64.b64encode(bytes([n]) * 32).decode() for n in (3, 2, 1)
)


def is_selected(n: int, fraction: float) -> bool:
    """Whether event ``n`` is a default-state (selected) event, for a selected ``fraction``."""
    return (n % 1000) < round(fraction * 1000)


def agent_event(n: int, event_id: str, selected: bool, account_id: str = ACCOUNT_ID) -> bytes:
    agent = str(1_204_000 + n % AGENTS)
    state = DEFAULT_STATES[n % len(DEFAULT_STATES)] if selected else "ON BREAK"
    second = n % 60
    return orjson.dumps(
        {
            "event_id": event_id,
            "agent_id": agent,
            "prev_state": "TRANSITION",
            "prev_aux_state": "",
            "agent_phone": f"55512{agent}",
            "source_ip": "203.0.113.24",
            "external_agent_id": f"EXT-{agent}",
            "duration": str(n % 1800),
            "agent_login_id": f"88{agent}",
            "account_id": account_id,
            "event_type": state,
            "event_aux_type": "" if selected else "Coaching Session",
            "date_time": f"2026-11-25 09:{(n // 60) % 60:02d}:{second:02d}",
            "pending_disp": "false",
            "username": f"agent.{agent}@contact-center.example.com",
        }
    )


def event_key(n: int, account_id: str = ACCOUNT_ID) -> bytes:
    return f"{account_id}:{1_204_000 + n % AGENTS}".encode()


def _producer(bootstrap: str, **extra: Any) -> Producer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "log_level": 3,
    }
    conf.update(extra)
    return Producer(conf)


def _produce_all(
    producer: Producer,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    progress: Callable[[int], None] | None,
) -> None:
    """Produce ``(value, key)`` records, waiting whenever the local queue is full."""
    for n, (value, key) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 10000 == 0:
            producer.poll(0)
            if progress is not None:
                progress(n)


def produce_events(
    bootstrap: str,
    topic: str,
    count: int,
    selected_fraction: float,
    *,
    prefix: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``count`` events; returns how many are selected (to be delivered)."""
    producer = _producer(bootstrap)
    chosen = [is_selected(n, selected_fraction) for n in range(count)]
    records = ((agent_event(n, f"{prefix}-{n}", chosen[n]), event_key(n)) for n in range(count))
    _produce_all(producer, topic, records, progress)
    if producer.flush(60) != 0:
        raise RuntimeError("the bench producer could not deliver every event")
    return sum(chosen)


class RateProducer:
    """Produces selected events at a steady rate on a thread (rate mode)."""

    def __init__(self, bootstrap: str, topic: str, rate: float, duration: float) -> None:
        self._producer = _producer(bootstrap, **{"linger.ms": 1})
        self._topic = topic
        self._rate = rate
        self._total = int(rate * duration)
        self.produced = 0
        self._thread = threading.Thread(target=self._run, name="bench-rate-producer", daemon=True)

    @property
    def total(self) -> int:
        return self._total

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        producer = self._producer
        start = time.monotonic()
        interval = 1.0 / self._rate
        for n in range(self._total):
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the producer, not synchronisation
            value = agent_event(n, f"lat-{n}-{time.monotonic_ns()}", True)
            producer.produce(self._topic, value, event_key(n))
            producer.poll(0)
            self.produced = n + 1
        producer.flush(30)


def integration(
    account_id: str, url: str, as_json: bool, signing_secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "account_id": account_id,
        "enabled": True,
        "agent_event_url": url,
        "call_event_url": url.replace("/agent", "/call"),
        "send_body_as_json": as_json,
        "agent_states": True,
        "send_all_agent_states": False,
        "agent_login_events": True,
        "agent_logout_events": True,
        "end_call_events": True,
        "headers": {AUTH_HEADER[0]: AUTH_HEADER[1]},
        "max_retries": 3,
        "timeout_seconds": 10,
    }
    if signing_secrets:
        cfg["signing_secrets"] = list(signing_secrets)
    return cfg


def _filler_record(n: int) -> tuple[bytes, bytes]:
    """A realistic integration of another account, as a (value, key) record."""
    account = f"bench-{n:07d}"
    cfg = integration(account, f"https://wfm-{n % 977}.example.com/ringcx/agent", n % 2 == 0)
    cfg["headers"]["X-Tenant"] = f"tenant-{n}"
    return orjson.dumps(cfg), account.encode()


def write_integrations(
    bootstrap: str,
    topic: str,
    configs: list[dict[str, Any]],
    *,
    filler: int = 0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write ``filler`` realistic integrations (other accounts), then ``configs``."""
    producer = _producer(bootstrap)
    given = ((orjson.dumps(cfg), str(cfg["account_id"]).encode()) for cfg in configs)
    records = itertools.chain(map(_filler_record, range(filler)), given)
    _produce_all(producer, topic, records, progress)
    if producer.flush(60) != 0:
        raise RuntimeError("the bench producer could not write the integrations")


def sample_request_parts(url: str, fmt: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """URL, headers (without the event id) and body of a typical webhook request."""
    from stream_wfm.delivery.request import compile_template

    cfg = validate_config(integration(ACCOUNT_ID, url, fmt == "json"))
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    event = decode_event(agent_event(7, "sample", True), EventKind.AGENT, "t:0:0")
    request = template.build(event)
    headers = [(k, v) for k, v in request.headers if k != "X-WFM-Event-Id"]
    return request.url, headers, request.body


def isolated_settings(bootstrap_servers: str, name: str, **overrides: Any) -> Settings:
    """Settings whose consumer group and topics all carry ``name``, so runs sharing one
    broker (bench scenarios, benchmark scripts) never meet: group ``name``, topics
    ``{name}-agent``, ``-call``, ``-config``, ``-retry`` (prefix) and ``-dlq``.
    ``overrides`` are further settings (or replace these)."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "group_id": name,
        "agent_events_topic": f"{name}-agent",
        "call_events_topic": f"{name}-call",
        "config_topic": f"{name}-config",
        "retry_topic_prefix": f"{name}-retry",
        "dlq_topic": f"{name}-dlq",
        **overrides,
    }
    return Settings(**values)
