"""Sample integrations and a replayed stream of platform events for the demo.

The stream is a morning in four contact centers: agents log in, go
AVAILABLE, take inbound (``ACD-CALL``) and outbound (``VPD-CALL``) calls
(ENGAGED while on the call, an end-call event afterwards), take breaks,
lunch, a custom aux state ("Coaching", "Team Huddle") and log out. Field
names, order and value style (strings, ``YYYY-MM-DD HH:MM:SS`` times, a null
``external_agent_id`` for agents without one) follow the platform's payload
(docs/contract.md §2). Everything is generated from a fixed seed: every run is the same.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

import orjson

from stream_wfm.events import (
    AGENT_LOGIN_FIELDS,
    AGENT_STATE_FIELDS,
    CALL_FIELDS,
    EventKind,
)

SEED: Final = 20261125
#: Demo credentials only: the receiver never checks them and the output masks them.
DEMO_BASIC_AUTH: Final = "Basic " + base64.b64encode(b"wfm-demo:not-a-real-password").decode()
DEMO_API_KEY: Final = "demo-key-7f3a9c2e41d8"


@dataclass(frozen=True)
class SampleIntegration:
    """One account's integration config and a line saying what it shows."""

    company: str
    config: dict[str, Any]
    story: str

    @property
    def account_id(self) -> str:
        return str(self.config["account_id"])


def sample_integrations(base_url: str) -> list[SampleIntegration]:
    """The demo's integrations, their endpoints on the demo receiver at ``base_url``.

    Paths under ``/flaky/`` fail now and then with 503 and paths under
    ``/strict/`` answer 400 to events without an ``external_agent_id`` (see
    :mod:`stream_wfm.demo.receiver`).
    """
    return [
        SampleIntegration("Acme Health", {
            "account_id": "15300002", "enabled": True,
            "agent_event_url": f"{base_url}/acme/agent?source=ringcx",
            "call_event_url": f"{base_url}/acme/call?source=ringcx",
            "send_body_as_json": False, "agent_states": True, "send_all_agent_states": False,
            "agent_login_events": True, "agent_logout_events": True, "end_call_events": True,
            "headers": {"Authorization": DEMO_BASIC_AUTH}, "max_retries": 3, "timeout_seconds": 5,
        }, "URL-encoded; default states, login, logout, end call; Basic auth"),
        SampleIntegration("Globex Retail", {
            "account_id": "15300003", "enabled": True,
            "agent_event_url": f"{base_url}/flaky/globex/agent",
            "send_body_as_json": True, "agent_states": True, "send_all_agent_states": True,
            "agent_login_events": True, "agent_logout_events": True, "end_call_events": True,
            "headers": {"X-Api-Key": DEMO_API_KEY, "X-Tenant": "globex"},
            "max_retries": 3, "timeout_seconds": 5,
        }, "JSON; all states incl. custom; no call URL; endpoint fails now and then (503)"),
        SampleIntegration("Initech Support", {
            "account_id": "15300004", "enabled": True,
            "agent_event_url": f"{base_url}/strict/initech/agent",
            "call_event_url": f"{base_url}/strict/initech/call",
            "send_body_as_json": True, "agent_states": False, "send_all_agent_states": False,
            "agent_login_events": True, "agent_logout_events": True, "end_call_events": True,
            "max_retries": 2, "timeout_seconds": 5,
        }, "JSON; login, logout, end call; endpoint rejects unmapped agents (400)"),
        SampleIntegration("Umbrella Telecom", {
            "account_id": "15300005", "enabled": False,
            "agent_event_url": f"{base_url}/umbrella/agent",
            "call_event_url": f"{base_url}/umbrella/call",
            "agent_states": True, "agent_login_events": True, "agent_logout_events": True,
            "end_call_events": True,
        }, "integration disabled: nothing is sent"),
    ]  # fmt: skip


@dataclass(frozen=True)
class SampleRecord:
    """One record to produce: which input topic, key and value."""

    kind: EventKind
    key: bytes
    value: bytes


@dataclass(frozen=True)
class _Agent:
    account_id: str
    agent_id: str
    login_id: str
    username: str
    external_id: str | None
    phone: str
    source_ip: str


# (account, agents, agents without an external id, gates) — 15300009 has no integration.
_ACCOUNTS: Final = (
    ("15300002", ["maria.lopez", "james.chen", "aisha.khan"], 0, ["Billing Support", "Claims"]),
    ("15300003", ["tom.becker", "li.wei", "sara.okafor"], 0, ["Store Orders", "Returns"]),
    ("15300004", ["raj.patel", "emma.stone", "noah.berg"], 1, ["Tier 2 Support"]),
    ("15300005", ["olga.ivanova", "peter.ng"], 0, ["Renewals Q4"]),
    ("15300009", ["ken.adams"], 0, ["Front Desk"]),
)
_CUSTOM_AUX: Final = ("Coaching", "Team Huddle", "System Issue")
_DISPOSITIONS: Final = ("Resolved", "Callback Scheduled", "Escalated", "Sale")


class _Clock:
    """Per-agent time line: ``advance`` moves it and returns the previous state's duration."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.now = start
        self._rng = rng

    def advance(self, low: int, high: int) -> str:
        seconds = self._rng.randint(low, high)
        self.now += timedelta(seconds=seconds)
        return str(seconds)

    def text(self) -> str:
        return self.now.strftime("%Y-%m-%d %H:%M:%S")


def _ordered(fields: tuple[str, ...], values: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, **{name: values[name] for name in fields if name in values}}


class _Stream:
    """Builds the events of every agent, each stamped with its time for the merge."""

    def __init__(self, day: date) -> None:
        self.rng = random.Random(SEED)
        self.day = day
        self.items: list[tuple[datetime, int, SampleRecord]] = []
        self._call_seq = 640_183_527_000

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, at: datetime, kind: EventKind, key: str, data: dict[str, Any] | bytes) -> None:
        value = data if isinstance(data, bytes) else orjson.dumps(data)
        self.items.append((at, len(self.items), SampleRecord(kind, key.encode(), value)))

    def agent_event(
        self,
        agent: _Agent,
        clock: _Clock,
        event_type: str,
        duration: str,
        prev: tuple[str, str] = ("", ""),
        aux: str = "",
        call: dict[str, str] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "external_agent_id": agent.external_id, "duration": duration,
            "agent_login_id": agent.login_id, "account_id": agent.account_id,
            "event_type": event_type, "agent_id": agent.agent_id, "date_time": clock.text(),
            "agent_phone": agent.phone, "username": agent.username, "source_ip": agent.source_ip,
            "prev_state": prev[0], "prev_aux_state": prev[1], "event_aux_type": aux,
            "pending_disp": "false", **(call or {}),
        }  # fmt: skip
        fields = AGENT_LOGIN_FIELDS if event_type in ("LOGIN", "LOGOUT") else AGENT_STATE_FIELDS
        data = _ordered(fields, values, self.event_id())
        self.add(clock.now, EventKind.AGENT, f"{agent.account_id}:{agent.agent_id}", data)

    def call_event(self, account_id: str, at: datetime, values: dict[str, Any]) -> None:
        data = _ordered(CALL_FIELDS, {"account_id": account_id, **values}, self.event_id())
        self.add(at, EventKind.CALL, f"{account_id}:{values['call_id']}", data)

    def next_call_id(self) -> str:
        self._call_seq += self.rng.randint(7, 4000)
        return str(self._call_seq)


def _phone(rng: random.Random) -> str:
    return f"555{rng.randint(1_000_000, 9_999_999)}"


def _agent_shift(stream: _Stream, agent: _Agent, gates: list[str], start: datetime) -> None:
    rng = stream.rng
    clock = _Clock(start, rng)
    stream.agent_event(agent, clock, "LOGIN", "0")
    # A state event's duration is the time spent in the previous state.
    stream.agent_event(agent, clock, "AVAILABLE", clock.advance(5, 20), ("TRANSITION", ""))
    state = ("AVAILABLE", "")
    plan = ["ACD", rng.choice(["ON BREAK", "AWAY", "TRAINING"]), "VPD", "CUSTOM", "LUNCH"]
    for step in plan:
        if step in ("ACD", "VPD"):
            state = _call(stream, agent, clock, gates, inbound=step == "ACD", prev=state)
            continue
        aux = rng.choice(_CUSTOM_AUX) if step == "CUSTOM" else ""
        base = "ON BREAK" if step == "CUSTOM" else step
        stream.agent_event(agent, clock, base, clock.advance(60, 900), state, aux)
        state = (base, aux)
        stream.agent_event(agent, clock, "AVAILABLE", clock.advance(300, 1800), state)
        state = ("AVAILABLE", "")
    clock.advance(60, 600)
    stream.agent_event(agent, clock, "LOGOUT", str(int((clock.now - start).total_seconds())))


def _call(
    stream: _Stream,
    agent: _Agent,
    clock: _Clock,
    gates: list[str],
    *,
    inbound: bool,
    prev: tuple[str, str],
) -> tuple[str, str]:
    rng = stream.rng
    call_id = stream.next_call_id()
    gate = rng.choice(gates)
    gate_id = str(71_000 + gates.index(gate) * 17 + int(agent.account_id[-1]))
    dnis, ani = f"800555{rng.randint(1000, 9999)}", _phone(rng)
    queue = str(rng.randint(3, 90)) if inbound else "0"
    call_start = clock.text()
    on_call = {
        "call_id": call_id,
        "call_source_id": gate_id,
        "call_source_name": gate,
        "dnis": dnis,
        "call_type": "INBOUND" if inbound else "OUTBOUND",
    }
    stream.agent_event(agent, clock, "ENGAGED", clock.advance(5, 120), prev, call=on_call)
    talk = clock.advance(60, 900)
    stream.call_event(agent.account_id, clock.now, {
        "recording_url": f"https://recordings.example.com/{agent.account_id}/{call_id}.wav",
        "agent_id": agent.agent_id, "queue_duration": queue,
        "agent_disposition": rng.choice(_DISPOSITIONS), "gate_name": gate,
        "call_state": "COMPLETE", "call_duration": talk, "call_id": call_id,
        "external_agent_id": agent.external_id, "event_type": "ACD-CALL" if inbound else "VPD-CALL",
        "gate_id": gate_id, "call_start": call_start, "dnis": dnis, "ani": ani,
        "username": agent.username,
    })  # fmt: skip
    stream.agent_event(agent, clock, "AVAILABLE", talk, ("ENGAGED", ""))
    return ("AVAILABLE", "")


def _unanswered_call(stream: _Stream, account_id: str, gate: str, at: datetime) -> None:
    """An outbound dial nobody answered: a VPD-CALL without agent fields."""
    rng = stream.rng
    stream.call_event(account_id, at, {
        "recording_url": "", "queue_duration": "0", "agent_disposition": "", "gate_name": gate,
        "call_state": "NO ANSWER", "call_duration": str(rng.randint(15, 40)),
        "call_id": stream.next_call_id(), "event_type": "VPD-CALL",
        "gate_id": str(90_000 + int(account_id[-1])),
        "call_start": at.strftime("%Y-%m-%d %H:%M:%S"),
        "dnis": _phone(rng), "ani": "8005550100",
    })  # fmt: skip


#: Two records that are not valid events (dead-lettered as ``invalid_event``).
MALFORMED: Final = (
    b'{"account_id": "15300002", "event_type": "AVAILABLE", "agent_id": "1204571", "date_ti',
    b'{"account_id": "15300003", "event_type": "LOGIN", "username": "no.agent.id"}',
)


def sample_stream(day: date | None = None) -> list[SampleRecord]:
    """The demo's input records in time order (each agent's events in order)."""
    stream = _Stream(day or date.today())
    rng = stream.rng
    opening = datetime.combine(stream.day, time(8, 55))
    for n, (account_id, usernames, without_external, gates) in enumerate(_ACCOUNTS):
        for i, user in enumerate(usernames):
            agent = _Agent(
                account_id=account_id,
                agent_id=str(1_204_571 + n * 100 + i),
                login_id=str(88_201_345 + n * 100 + i),
                username=f"{user}@{account_id}.example.com",
                external_id=None if i < without_external else f"EXT-{20_417 + n * 100 + i}",
                phone=_phone(rng),
                source_ip=f"203.0.113.{24 + n * 10 + i}",
            )
            start = opening + timedelta(seconds=rng.randint(0, 900))
            _agent_shift(stream, agent, gates, start)
        _unanswered_call(stream, account_id, gates[0], opening + timedelta(minutes=75 + n))
    records = [record for _at, _seq, record in sorted(stream.items, key=lambda i: i[:2])]
    middle = len(records) // 2
    bad = [
        SampleRecord(EventKind.AGENT, b"15300002:1204571", MALFORMED[0]),
        SampleRecord(EventKind.AGENT, b"15300003:", MALFORMED[1]),
    ]
    return records[:middle] + bad[:1] + records[middle:] + bad[1:]
