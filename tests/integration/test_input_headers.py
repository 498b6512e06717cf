"""The input record's Kafka headers through the real service: kept in retry and dead-letter
records (docs/contract.md §6), and a W3C ``traceparent`` (with ``tracestate``) passed on to
the webhook on every attempt (§5)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from stream_wfm.retry.records import decode_dlq_record, decode_retry_record
from stream_wfm.service import Service
from stream_wfm.settings import Settings
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.responders import failing_first
from tests.helpers.topics import read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


Headers = list[tuple[str, bytes | None]]


def produce_with_headers(
    settings: Settings, topic: str, records: list[tuple[dict[str, Any], Headers | None]]
) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    for event, headers in records:
        producer.produce(
            topic, key=b"1:7", value=orjson.dumps(event),
            headers=headers,  # type: ignore[arg-type]  # bytes or None values are fine
        )  # fmt: skip
    assert producer.flush(10) == 0


def login(event_id: str) -> dict[str, Any]:
    return {"account_id": "1", "agent_id": "7", "event_type": "LOGIN", "event_id": event_id}


def configure(settings: Settings, url: str, **more: Any) -> None:
    put_config(
        settings,
        {"account_id": "1", "send_body_as_json": True, "agent_login_events": True,
         "agent_event_url": url, **more},
    )  # fmt: skip


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_a_permanently_failed_events_dead_letter_keeps_its_input_headers(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory(respond=lambda _r: (400, {}))
    configure(settings, rec.url())
    headers: Headers = [
        ("source", b"wfm-platform"), ("binary", b"\xff\x00\x80"), ("empty", None),
        ("source", b"repeated"),
    ]  # fmt: skip
    async with Service(settings) as service:
        produce_with_headers(settings, settings.agent_events_topic, [(login("e-1"), headers)])
        await wait_until(
            lambda: metric(service, "stream_wfm_dead_letters_total", reason="permanent_status") == 1
        )
    [msg] = read_topic(settings, settings.dlq_topic)
    letter = decode_dlq_record(msg.value())
    assert (letter.reason, letter.event_id) == ("permanent_status", "e-1")
    assert letter.source.headers == headers
    assert orjson.loads(msg.value())["event"]["headers"][1]["value_encoding"] == "base64"


async def test_the_traceparent_is_sent_on_the_first_attempt_and_on_the_retry(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="1s")
    rec = await receiver_factory(respond=failing_first(503))
    configure(settings, rec.url())
    traced: Headers = [("traceparent", TRACEPARENT.encode()), ("tracestate", TRACESTATE.encode())]
    invalid: Headers = [("traceparent", b"00-not-a-trace-context-01"), ("tracestate", b"x=1")]
    async with Service(settings) as service:
        produce_with_headers(
            settings, settings.agent_events_topic,
            [(login("traced"), traced), (login("plain"), None), (login("invalid"), invalid)],
        )  # fmt: skip
        await rec.wait_count(6, timeout=30)
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") == 0)
    by_id: dict[str, list[Received]] = {}
    for r in rec.requests:
        by_id.setdefault(r.headers["X-WFM-Event-Id"], []).append(r)
    assert [len(by_id[i]) for i in ("traced", "plain", "invalid")] == [2, 2, 2]
    for r in by_id["traced"]:  # the first attempt and the retry
        assert (r.headers["traceparent"], r.headers["tracestate"]) == (TRACEPARENT, TRACESTATE)
    for r in by_id["plain"] + by_id["invalid"]:
        assert not {"traceparent", "tracestate"} & {name.lower() for name in r.headers}
    retries = {
        record.event_id: record
        for record in (decode_retry_record(m.value())
                       for m in read_topic(settings, settings.retry_topics()[0]))
    }  # fmt: skip
    assert retries["traced"].source.headers == traced
    assert retries["plain"].source.headers is None


async def test_a_configured_traceparent_wins_over_the_inputs(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory()
    configured = "00-11111111111111111111111111111111-2222222222222222-00"
    configure(settings, rec.url(), headers={"traceparent": configured})
    traced: Headers = [("traceparent", TRACEPARENT.encode()), ("tracestate", TRACESTATE.encode())]
    async with Service(settings):
        produce_with_headers(settings, settings.agent_events_topic, [(login("e-1"), traced)])
        [request] = await rec.wait_count(1)
    assert request.headers["traceparent"] == configured
    assert "tracestate" not in {name.lower() for name in request.headers}
