"""Input framed by a Confluent Schema Registry JSON serializer (docs/contract.md §2), through
the real service: magic byte 0 and a 4-byte schema id before the JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_wfm.events import AGENT_STATE_FIELDS, CALL_FIELDS
from stream_wfm.retry.records import decode_dlq_record, decode_retry_record
from stream_wfm.service import Service
from tests.helpers.config import put_config
from tests.helpers.responders import failing_first
from tests.helpers.topics import produce, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def framed(event: dict[str, Any], schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + orjson.dumps(event)


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_schema_registry_framed_json_is_delivered(
    settings_factory: Any, receiver_factory: Any
) -> None:
    """Hidden interop check: Schema Registry framed JSON delivered — agent and call topics,
    the payload as if the record held the bare document."""
    settings = settings_factory()
    rec = await receiver_factory()
    put_config(
        settings,
        {"account_id": "15300002", "send_body_as_json": True, "agent_states": True,
         "end_call_events": True, "agent_event_url": rec.url("/agent"),
         "call_event_url": rec.url("/call")},
    )  # fmt: skip
    on_call, call = fixture("agent_state_on_call"), fixture("end_call_inbound")
    async with Service(settings) as service:
        # Schema ids whose bytes are valid UTF-8 and ones that are not.
        produce(settings, settings.agent_events_topic, [(b"k1", framed(on_call, 1))])
        produce(settings, settings.call_events_topic, [(b"k2", framed(call, 0xFFFFFFF0))])
        await rec.wait_count(2)
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") == 0)
        invalid = sum(
            metric(service, "stream_wfm_events_invalid_total", topic=topic)
            for topic in (settings.agent_events_topic, settings.call_events_topic)
        )
    by_path = {r.path: r for r in rec.requests}
    assert by_path["/agent"].body == orjson.dumps(
        {k: on_call[k] for k in AGENT_STATE_FIELDS if k in on_call}
    )
    assert by_path["/agent"].headers["X-WFM-Event-Id"] == on_call["event_id"]
    assert by_path["/call"].body == orjson.dumps({k: call[k] for k in CALL_FIELDS if k in call})
    assert by_path["/call"].headers["X-WFM-Event-Id"] == call["event_id"]
    assert invalid == 0
    assert read_topic(settings, settings.dlq_topic) == []


async def test_a_framed_event_is_retried_from_its_framed_value(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="1s")
    rec = await receiver_factory(respond=failing_first(503))
    put_config(
        settings,
        {"account_id": "1", "send_body_as_json": True, "agent_login_events": True,
         "agent_event_url": rec.url()},
    )  # fmt: skip
    login = {"account_id": "1", "agent_id": "7", "event_type": "LOGIN", "event_id": "e-f"}
    value = framed(login, 0xC0FFEE)
    async with Service(settings) as service:
        produce(settings, settings.agent_events_topic, [(b"1:7", value)])
        first, second = await rec.wait_count(2, timeout=30)
        await wait_until(lambda: metric(service, "stream_wfm_pending_events") == 0)
    assert (
        first.body
        == second.body
        == orjson.dumps({"account_id": "1", "event_type": "LOGIN", "agent_id": "7"})
    )
    [retry] = read_topic(settings, settings.retry_topics()[0])
    assert decode_retry_record(retry.value()).source.value == value  # kept as it was


async def test_a_value_led_by_byte_0_too_short_for_the_framing_is_an_invalid_event(
    settings_factory: Any,
) -> None:
    settings = settings_factory()
    async with Service(settings) as service:
        produce(settings, settings.agent_events_topic, [(b"k", b"\x00\x00\x01")])
        await wait_until(
            lambda: metric(service, "stream_wfm_dead_letters_total", reason="invalid_event") == 1
        )
    [msg] = read_topic(settings, settings.dlq_topic)
    letter = decode_dlq_record(msg.value())
    assert (
        letter.detail == "starts with byte 0 (schema registry framing) but is shorter than 5 bytes"
    )
    assert letter.source.value == b"\x00\x00\x01"
