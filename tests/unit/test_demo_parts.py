"""The demo's pure parts: sample integrations and events, the receiver's rules, the
summary's masking."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_wfm.demo.receiver import MASK, DemoReceiver, EndpointStats, SampleRequest
from stream_wfm.demo.samples import (
    DEMO_API_KEY,
    DEMO_BASIC_AUTH,
    MALFORMED,
    sample_integrations,
    sample_stream,
)
from stream_wfm.demo.summary import endpoint_rows, render_samples
from stream_wfm.events import InvalidEventError, decode_event, payload_fields
from stream_wfm.integrations.model import validate_config
from stream_wfm.routing import decide

BASE = "http://127.0.0.1:8080"


def test_sample_integrations_are_valid_and_varied() -> None:
    integrations = sample_integrations(BASE)
    configs = [validate_config(i.config, i.account_id) for i in integrations]
    assert {c.send_body_as_json for c in configs} == {True, False}
    assert any(c.send_all_agent_states for c in configs)
    assert any(not c.enabled for c in configs)
    assert any("Authorization" in c.headers for c in configs)


def test_sample_stream_is_realistic_and_deterministic() -> None:
    records = sample_stream()
    assert 150 <= len(records) <= 250
    assert records == sample_stream()
    configs = {i.account_id: validate_config(i.config) for i in sample_integrations(BASE)}
    invalid, kinds, types, reasons = 0, set(), set(), set()
    for n, record in enumerate(records):
        try:
            event = decode_event(record.value, record.kind, f"t:0:{n}")
        except InvalidEventError:
            invalid += 1
            continue
        data = orjson.loads(record.value)
        # Fields in the contract's order, values as strings (external_agent_id may be null).
        assert [k for k in data if k != "event_id"] == [
            f for f in payload_fields(event) if f in data
        ]
        assert all(isinstance(v, str) for k, v in data.items() if k != "external_agent_id")
        kinds.add(event.kind)
        types.add((event.event_type, data.get("event_aux_type", "")))
        reasons.add(decide(event, configs.get(event.account_id)))
    assert invalid == len(MALFORMED)
    assert len(kinds) == 2
    for expected in [("LOGIN", ""), ("LOGOUT", ""), ("AVAILABLE", ""), ("ENGAGED", ""),
                     ("LUNCH", ""), ("ACD-CALL", ""), ("VPD-CALL", "")]:  # fmt: skip
        assert any(t[0] == expected[0] for t in types), expected
    assert any(t[0] == "ON BREAK" and t[1] for t in types)  # a custom aux state
    # Sent, and filtered for several reasons.
    assert None in reasons
    assert {"disabled", "no_integration", "state_not_selected", "custom_state_not_selected"} <= (
        reasons
    )


Client = TestClient[web.Request, web.Application]


@pytest.fixture
def receiver() -> DemoReceiver:
    return DemoReceiver(fail_every=4)


@pytest.fixture
async def client(receiver: DemoReceiver) -> AsyncIterator[Client]:
    async with TestClient(TestServer(receiver.app())) as c:
        yield c


def _failing_id(fail: bool) -> str:
    n = 0
    while (zlib.crc32(f"e{n}".encode()) % 4 == 0) is not fail:
        n += 1
    return f"e{n}"


async def test_flaky_endpoint_fails_the_first_attempt_of_some_events(
    client: Client, receiver: DemoReceiver
) -> None:
    bad, good = _failing_id(True), _failing_id(False)
    statuses = []
    for event_id in (bad, good, bad, bad):
        resp = await client.post("/flaky/x", headers={"X-WFM-Event-Id": event_id})
        statuses.append(resp.status)
    assert statuses == [503, 200, 200, 200]
    stats = receiver.endpoints["/flaky/x"]
    assert (stats.requests, stats.delivered, stats.unavailable, stats.retried) == (4, 3, 1, 1)


async def test_strict_endpoint_rejects_events_without_external_agent_id(
    client: Client, receiver: DemoReceiver
) -> None:
    ok = await client.post("/strict/a", json={"external_agent_id": "EXT-1"})
    null = await client.post("/strict/a", json={"external_agent_id": None})
    query = await client.post("/strict/a?external_agent_id=")
    other = await client.post("/plain", json={"external_agent_id": None})
    assert [ok.status, null.status, query.status, other.status] == [200, 400, 400, 200]
    assert receiver.endpoints["/strict/a"].rejected == 2


async def test_samples_mask_credentials(client: Client, receiver: DemoReceiver) -> None:
    await client.post("/a", headers={"Authorization": "Basic c2VjcmV0", "X-Tenant": "t1"})
    sample = receiver.endpoints["/a"].sample
    assert sample is not None
    assert dict(sample.headers)["Authorization"] == MASK
    assert dict(sample.headers)["X-Tenant"] == "t1"  # the receiver cannot know it is secret


def test_summary_masks_every_configured_header() -> None:
    integrations = sample_integrations(BASE)
    headers = (("Authorization", DEMO_BASIC_AUTH), ("X-Api-Key", DEMO_API_KEY),
               ("X-Tenant", "globex"), ("User-Agent", "stream-wfm/0"))  # fmt: skip
    sample = SampleRequest("POST", f"{BASE}/flaky/globex/agent", headers, "{}", 200)
    stats = {"/flaky/globex/agent": EndpointStats(requests=1, delivered=1, sample=sample)}
    text = render_samples(endpoint_rows(integrations, stats, []))
    assert DEMO_API_KEY not in text
    assert DEMO_BASIC_AUTH not in text  # not configured for Globex, but a credential header
    assert "X-Tenant: ********" in text
    assert "User-Agent: stream-wfm/0" in text
