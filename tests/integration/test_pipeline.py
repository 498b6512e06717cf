"""The pipeline running for real: broker → service → HTTP receiver (docs/contract.md §4, §5, §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest

from stream_wfm.events import AGENT_STATE_FIELDS, CALL_FIELDS
from stream_wfm.retry.records import decode_dlq_record
from stream_wfm.service import Service
from tests.helpers.config import delete_config, put_all_states_config, put_config
from tests.helpers.topics import produce, produce_json, read_topic
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


def metric(service: Service, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


def agent_url(service: Service, account_id: str) -> str | None:
    entry = service.store.get(account_id)
    return None if entry is None else entry.config.agent_event_url


def state(account: str, agent: str, event_type: str, aux: str = "", **more: Any) -> dict[str, Any]:
    return {
        "account_id": account,
        "agent_id": agent,
        "event_type": event_type,
        "event_aux_type": aux,
        **more,
    }


async def test_every_filter_rule(settings_factory: Any, receiver_factory: Any) -> None:
    """docs/contract.md §4 end to end: what each selection lets through, and why the rest
    is filtered."""
    settings = settings_factory()
    rec = await receiver_factory()
    base = {"send_body_as_json": True}
    accounts = {
        "defaults": {"agent_states": True},
        "all": {"send_all_agent_states": True},
        "login": {"agent_login_events": True},
        "logout": {"agent_logout_events": True},
        "calls": {"end_call_events": True},
        "disabled": {
            "enabled": False,
            "agent_states": True,
            "agent_login_events": True,
            "end_call_events": True,
        },
        "nourl": {"agent_states": True, "end_call_events": True, "agent_login_events": True},
    }
    for account, selection in accounts.items():
        cfg = {
            "account_id": account,
            **base,
            **selection,
            "agent_event_url": rec.url(f"/{account}/agent"),
            "call_event_url": rec.url(f"/{account}/call"),
        }
        if account == "nourl":
            cfg["agent_event_url"] = None
            cfg["call_event_url"] = None
        put_config(settings, cfg)
    events = []
    for account in [*accounts, "unknown"]:
        events += [
            state(account, "a1", "LOGIN", event_id=f"{account}-login"),
            state(account, "a1", "AVAILABLE", event_id=f"{account}-available"),
            state(account, "a1", "ON_BREAK", "On Break", event_id=f"{account}-onbreak"),
            state(account, "a1", "AWAY", "Coaching", event_id=f"{account}-custom-aux"),
            state(account, "a1", "MEETING", event_id=f"{account}-custom-state"),
            state(account, "a1", "LOGOUT", event_id=f"{account}-logout"),
        ]
    calls = [
        {"account_id": a, "call_id": "c1", "event_type": "ACD-CALL", "event_id": f"{a}-call"}
        for a in [*accounts, "unknown"]
    ]
    expected = {
        "defaults": {"available", "onbreak"},
        "all": {"available", "onbreak", "custom-aux", "custom-state"},
        "login": {"login"},
        "logout": {"logout"},
        "calls": {"call"},
    }
    total = sum(len(v) for v in expected.values())
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, events)
        produce_json(settings, settings.call_events_topic, calls)
        await wait_until(
            lambda: (
                metric(
                    service, "stream_wfm_events_consumed_total", topic=settings.agent_events_topic
                )
                == len(events)
                and metric(
                    service, "stream_wfm_events_consumed_total", topic=settings.call_events_topic
                )
                == len(calls)
                and len(rec.requests) >= total
            ),
            what="all events consumed and expected deliveries made",
        )
        filtered = {
            reason: metric(service, "stream_wfm_events_filtered_total", reason=reason)
            for reason in (
                "no_integration",
                "disabled",
                "no_url",
                "login_not_selected",
                "logout_not_selected",
                "state_not_selected",
                "custom_state_not_selected",
                "end_call_not_selected",
            )
        }
    # event_id is not a payload field: identify deliveries by the X-WFM-Event-Id header.
    got: dict[str, set[str]] = {}
    for r in rec.requests:
        account = r.path.strip("/").split("/")[0]
        got.setdefault(account, set()).add(r.headers["X-WFM-Event-Id"].split("-", 1)[1])
    assert got == expected
    assert filtered["no_integration"] == 7
    assert filtered["disabled"] == 7
    assert filtered["no_url"] == 7
    # defaults: custom-aux + custom-state filtered as custom; others filtered by selection.
    assert filtered["custom_state_not_selected"] >= 2
    assert sum(filtered.values()) + total == len(events) + len(calls)


async def test_formats_byte_for_byte(settings_factory: Any, receiver_factory: Any) -> None:
    """docs/contract.md §5: JSON body and URL-encoded query, field order, merge with a
    configured query."""
    settings = settings_factory()
    rec = await receiver_factory()
    put_config(
        settings,
        {
            "account_id": "15300002",
            "send_body_as_json": True,
            "agent_states": True,
            "end_call_events": True,
            "agent_event_url": rec.url("/json/agent"),
            "call_event_url": rec.url("/json/call"),
            "headers": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "X-Tenant": "acme"},
        },
    )
    put_config(
        settings,
        {
            "account_id": "15300003",
            "agent_states": True,
            "end_call_events": True,
            "agent_event_url": rec.url("/form/agent?token=abc&x=1"),
            "call_event_url": rec.url("/form/call"),
        },
    )
    on_call = fixture("agent_state_on_call", unexpected_field="dropped")
    on_call_form = fixture("agent_state_on_call", account_id="15300003", external_agent_id=None)
    call = fixture("end_call_inbound")
    async with Service(settings):
        produce_json(settings, settings.agent_events_topic, [on_call, on_call_form])
        produce_json(settings, settings.call_events_topic, [call])
        await rec.wait_count(3)
    by_path = {r.path: r for r in rec.requests}

    agent_json = by_path["/json/agent"]
    expected = {k: on_call[k] for k in AGENT_STATE_FIELDS if k in on_call}
    assert agent_json.method == "POST"
    assert agent_json.body == orjson.dumps(expected)
    assert list(agent_json.json()) == [k for k in AGENT_STATE_FIELDS if k in on_call]
    assert agent_json.headers["Content-Type"] == "application/json"
    assert agent_json.headers["Authorization"] == "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
    assert agent_json.headers["X-Tenant"] == "acme"
    assert agent_json.headers["User-Agent"].startswith("stream-wfm/")
    assert agent_json.headers["X-WFM-Event-Id"] == on_call["event_id"]
    assert agent_json.query == ""

    call_json = by_path["/json/call"]
    assert call_json.body == orjson.dumps({k: call[k] for k in CALL_FIELDS if k in call})

    form = by_path["/form/agent"]
    assert form.method == "POST"
    assert form.body == b""
    pairs = parse_qsl(form.query, keep_blank_values=True)
    assert pairs[:2] == [("token", "abc"), ("x", "1")]
    assert pairs[2:] == [
        (k, "" if on_call_form[k] is None else on_call_form[k])
        for k in AGENT_STATE_FIELDS
        if k in on_call_form
    ]
    assert ("external_agent_id", "") in pairs
    assert "Authorization" not in form.headers


async def test_config_update_and_tombstone_while_running(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    old, new = await receiver_factory(), await receiver_factory()
    put_config(
        settings, {"account_id": "42", "agent_login_events": True, "agent_event_url": old.url()}
    )
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [state("42", "1", "LOGIN")])
        await old.wait_count(1)
        put_config(
            settings, {"account_id": "42", "agent_login_events": True, "agent_event_url": new.url()}
        )
        await wait_until(lambda: agent_url(service, "42") == new.url(), what="config update")
        produce_json(settings, settings.agent_events_topic, [state("42", "1", "LOGIN")])
        await new.wait_count(1)
        delete_config(settings, "42")
        await wait_until(lambda: service.store.get("42") is None, what="tombstone applied")
        produce_json(settings, settings.agent_events_topic, [state("42", "1", "LOGIN")])
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_events_filtered_total", reason="no_integration") == 1
            )
        )
    assert len(old.requests) == 1
    assert len(new.requests) == 1


async def test_invalid_config_record_keeps_last_valid(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory()
    put_config(
        settings, {"account_id": "7", "agent_login_events": True, "agent_event_url": rec.url()}
    )
    async with Service(settings) as service:
        produce(
            settings,
            settings.config_topic,
            [
                (b"7", b'{"account_id": "7", "agent_event_url": "ftp://nope"}'),
                (b"7", b"not json"),
                (b"8", b'{"account_id": "9"}'),
            ],
        )
        await wait_until(lambda: metric(service, "stream_wfm_config_invalid_records_total") == 3)
        produce_json(settings, settings.agent_events_topic, [state("7", "1", "LOGIN")])
        reqs = await rec.wait_count(1)
    assert reqs[0].path == "/hook"


async def test_bad_records_are_dead_lettered_and_later_events_flow(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(topic_partitions=1)
    rec = await receiver_factory()
    put_config(
        settings, {"account_id": "5", "agent_login_events": True, "agent_event_url": rec.url()}
    )
    bad = [
        b"not json",
        b"[1, 2]",
        b'{"account_id": "5", "event_type": "LOGIN"}',
        b'{"account_id": "", "agent_id": "1", "event_type": "LOGIN"}',
        b"\xff\xfe",
        b'{"a": NaN}',
        None,
    ]
    async with Service(settings) as service:
        produce(settings, settings.agent_events_topic, [(b"k", v) for v in bad])
        produce_json(settings, settings.agent_events_topic, [state("5", "1", "LOGIN")])
        await rec.wait_count(1)
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="invalid_event") == len(bad)
            )
        )
    letters = [decode_dlq_record(m.value()) for m in read_topic(settings, settings.dlq_topic)]
    assert sorted(letter.source.offset for letter in letters) == list(range(len(bad)))
    assert {letter.reason for letter in letters} == {"invalid_event"}
    assert all(letter.detail for letter in letters)
    assert {letter.source.value for letter in letters} == set(bad)


async def test_per_agent_order_with_many_agents(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory()
    rec = await receiver_factory()
    put_all_states_config(settings, rec.url())
    agents, per_agent = 40, 25
    events = [
        state("1", f"agent-{a}", "AVAILABLE", duration=str(i))
        for i in range(per_agent)
        for a in range(agents)
    ]
    async with Service(settings):
        produce_json(settings, settings.agent_events_topic, events)
        await rec.wait_count(len(events), timeout=60)
    seen: dict[str, list[int]] = {}
    for r in rec.requests:
        body = r.json()
        seen.setdefault(body["agent_id"], []).append(int(body["duration"]))
    assert len(seen) == agents
    assert all(seq == list(range(per_agent)) for seq in seen.values())


async def test_destination_guard_refuses_loopback(
    settings_factory: Any, receiver_factory: Any
) -> None:
    settings = settings_factory(allow_private_destinations=False)
    rec = await receiver_factory()
    put_config(
        settings,
        {
            "account_id": "1",
            "agent_login_events": True,
            "agent_event_url": rec.url(),
            "call_event_url": f"http://localhost:{rec.port}/by-name",
            "end_call_events": True,
        },
    )
    async with Service(settings) as service:
        produce_json(settings, settings.agent_events_topic, [state("1", "1", "LOGIN")])
        produce_json(
            settings,
            settings.call_events_topic,
            [{"account_id": "1", "call_id": "9", "event_type": "ACD-CALL"}],
        )
        await wait_until(
            lambda: (
                metric(service, "stream_wfm_dead_letters_total", reason="destination_not_allowed")
                == 2
            )
        )
    assert rec.requests == []
    letters = [decode_dlq_record(m.value()) for m in read_topic(settings, settings.dlq_topic)]
    assert {letter.reason for letter in letters} == {"destination_not_allowed"}
    assert all(letter.attempts == 1 for letter in letters)
