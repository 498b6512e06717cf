"""Records too large for a retry or DLQ record never stall their partition
(docs/contract.md §12): on the real broker, a 760 KB binary record (its DLQ record,
base64, is over 1 MB) and a 769 KB JSON event full of quotes (its retry record,
escaped again, is over 1 MB) are dead-lettered with reason ``record_too_large`` and
their value's size and SHA-256 instead of the value; the later events of the same key
are delivered, and after a restart none of them is delivered again."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import orjson
import pytest

from stream_wfm.retry.records import decode_dlq_record
from stream_wfm.service import Service
from tests.helpers.config import put_config
from tests.helpers.receiver import Received
from tests.helpers.topics import produce, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

KEY = b"1:7"


def login(event_id: str, **more: Any) -> bytes:
    event = {"account_id": "1", "agent_id": "7", "event_type": "LOGIN", "event_id": event_id}
    return orjson.dumps({**event, **more})


def ids(requests: list[Received]) -> list[str]:
    return [r.headers["X-WFM-Event-Id"] for r in requests]


def too_large(settings: Any) -> list[Any]:
    records = [decode_dlq_record(m.value()) for m in read_topic(settings, settings.dlq_topic)]
    return [r for r in records if r.reason == "record_too_large"]


async def test_records_too_large_to_retry_or_dead_letter_never_stall_the_partition(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(retry_backoff="1s")
    rec = await receiver_factory(
        respond=lambda r: (503 if r.headers["X-WFM-Event-Id"] == "big-json" else 200, {})
    )
    put_config(
        settings,
        {"account_id": "1", "agent_login_events": True, "send_body_as_json": True,
         "agent_event_url": rec.url(), "max_retries": 3},
    )  # fmt: skip
    binary = os.urandom(760_000)
    big_json = login("big-json", note='"' * 384_000)  # 769 KB, each quote escaped as \"
    assert len(big_json) > 768_000
    later = [login(f"after-{n}") for n in range(3)]
    async with Service(settings):
        produce(
            settings,
            settings.agent_events_topic,
            [(KEY, binary), (KEY, big_json), *[(KEY, v) for v in later]],
        )
        await rec.wait_count(4, timeout=30)  # big-json's first attempt, then the rest
        await wait_until(lambda: len(too_large(settings)) == 2, 30, "two record_too_large")
    assert ids(rec.requests) == ["big-json", "after-0", "after-1", "after-2"]

    by_size = {r.source.value_size: r for r in too_large(settings)}
    binary_letter, json_letter = by_size[len(binary)], by_size[len(big_json)]
    for letter, value in ((binary_letter, binary), (json_letter, big_json)):
        assert letter.source.value is None
        assert letter.source.value_sha256 == hashlib.sha256(value).hexdigest()
        assert letter.source.topic == settings.agent_events_topic
        assert letter.source.key == KEY
    assert binary_letter.detail is not None
    assert binary_letter.detail.startswith("invalid_event: ")
    assert (json_letter.event_id, json_letter.attempts, json_letter.last_status) == (
        "big-json", 1, 503,
    )  # fmt: skip
    assert binary_letter.source.offset + 1 == json_letter.source.offset

    # Restarted, the service resumes after them: a marker produced now is the next
    # thing delivered, and nothing before it comes again.
    async with Service(settings):
        produce(settings, settings.agent_events_topic, [(KEY, login("marker"))])
        await wait_until(lambda: "marker" in ids(rec.requests), 30, "marker delivered")
    assert ids(rec.requests) == ["big-json", "after-0", "after-1", "after-2", "marker"]
    assert len(too_large(settings)) == 2
