"""``Send test event``: a realistic sample event, formatted and sent exactly as
the service would send it.

The sample goes through :func:`~stream_wfm.events.decode_event`, the request
template of the config in the form (:func:`~stream_wfm.delivery.request.compile_template`,
as the service compiles it: URL, format, configured headers, signing secrets) and the
transport's ``send_with_response`` (destination guard, timeout, no redirects; a signed
request is signed as it is sent, like the service's). Its
``event_id`` is ``test-<uuid>``, so the receiver sees ``X-WFM-Event-Id: test-…``.
It is sent even when the integration would filter such an event; the result says so.

The result is a short summary — status code, the standard reason phrase, time taken,
the body's size — and never the response body, which may reflect the request's
headers (saved secrets) back.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final

import orjson

from stream_wfm.delivery.outcome import OutcomeKind
from stream_wfm.delivery.request import EVENT_ID_HEADER, compile_template
from stream_wfm.delivery.transport import Transport
from stream_wfm.events import EventKind, decode_event
from stream_wfm.integrations.model import IntegrationConfig
from stream_wfm.routing import decide

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
#: The response body is read up to this many bytes, to tell its size; never shown.
BODY_READ_LIMIT: Final = 4096


class Sample(enum.StrEnum):
    LOGIN = "login"
    STATE = "state"
    END_CALL = "end_call"


SAMPLE_LABELS: Final = {
    Sample.LOGIN: "Agent login (LOGIN)",
    Sample.STATE: "Agent state (AVAILABLE)",
    Sample.END_CALL: "End call (ACD-CALL)",
}
SAMPLE_KINDS: Final = {
    Sample.LOGIN: EventKind.AGENT,
    Sample.STATE: EventKind.AGENT,
    Sample.END_CALL: EventKind.CALL,
}

#: Why the service would not send such an event (routing's filter reasons).
FILTER_EXPLANATIONS: Final = {
    "disabled": "the integration is not enabled",
    "no_url": "no URL is set for this kind of event",
    "login_not_selected": "Agent Login Events is not ticked",
    "logout_not_selected": "Agent Logout Events is not ticked",
    "state_not_selected": "neither Agent States nor Send All Agent States is ticked",
    "custom_state_not_selected": "Send All Agent States is not ticked",
    "end_call_not_selected": "End Call Events is not ticked",
}


def default_sample(config: IntegrationConfig) -> Sample:
    """The sample that matches what the integration sends."""
    if config.agent_event_url is not None:
        if config.agent_login_events:
            return Sample.LOGIN
        if config.agent_states or config.send_all_agent_states:
            return Sample.STATE
    if config.call_event_url is not None and config.end_call_events:
        return Sample.END_CALL
    return Sample.LOGIN if config.agent_event_url is not None else Sample.END_CALL


def sample_event(sample: Sample, account_id: str, event_id: str, now: datetime) -> dict[str, Any]:
    """A sample event with the fields of docs/contract.md §2, in their order."""
    agent = {
        "external_agent_id": "EXT-20417",
        "agent_login_id": "88201345",
        "agent_id": "1204571",
        "agent_phone": "5551230100",
        "username": "test.agent@example.com",
        "source_ip": "203.0.113.24",
    }
    stamp = now.strftime(TIME_FORMAT)
    if sample is Sample.LOGIN:
        return {
            "event_id": event_id,
            "external_agent_id": agent["external_agent_id"],
            "duration": "0",
            "agent_login_id": agent["agent_login_id"],
            "account_id": account_id,
            "event_type": "LOGIN",
            "agent_id": agent["agent_id"],
            "date_time": stamp,
            "agent_phone": agent["agent_phone"],
            "username": agent["username"],
            "source_ip": agent["source_ip"],
        }
    if sample is Sample.STATE:
        return {
            "event_id": event_id,
            "agent_id": agent["agent_id"],
            "prev_state": "TRANSITION",
            "prev_aux_state": "",
            "agent_phone": agent["agent_phone"],
            "source_ip": agent["source_ip"],
            "external_agent_id": agent["external_agent_id"],
            "duration": "12",
            "agent_login_id": agent["agent_login_id"],
            "account_id": account_id,
            "event_type": "AVAILABLE",
            "event_aux_type": "",
            "date_time": stamp,
            "pending_disp": "false",
            "username": agent["username"],
        }
    return {
        "event_id": event_id,
        "recording_url": "",
        "agent_id": agent["agent_id"],
        "queue_duration": "37",
        "agent_disposition": "Resolved",
        "gate_name": "Billing Support",
        "call_state": "COMPLETE",
        "call_duration": "412",
        "call_id": "900000000001",
        "external_agent_id": agent["external_agent_id"],
        "account_id": account_id,
        "event_type": "ACD-CALL",
        "gate_id": "71045",
        "call_start": (now - timedelta(seconds=449)).strftime(TIME_FORMAT),
        "dnis": "8005550199",
        "ani": "3125550148",
        "username": agent["username"],
    }


@dataclass(frozen=True, slots=True)
class SentTestEvent:
    """What the page shows after a test event (never a header value)."""

    sample: Sample
    event_id: str
    url: str | None
    json_body: bool
    header_names: tuple[str, ...]
    signed: bool  # with the signature headers (docs/contract.md §11)
    delivered: bool
    outcome: str
    status: int | None
    error: str | None
    elapsed_ms: float
    body_bytes: int
    filtered_reason: str | None

    @property
    def reason_phrase(self) -> str:
        """The standard reason phrase of the status ("OK", "Not Found"), never the server's."""
        try:
            return HTTPStatus(self.status or 0).phrase
        except ValueError:
            return ""

    @property
    def body_size(self) -> str:
        if self.body_bytes >= BODY_READ_LIMIT:
            return f"{BODY_READ_LIMIT} bytes or more"
        return "empty" if self.body_bytes == 0 else f"{self.body_bytes} bytes"

    @property
    def filtered_because(self) -> str | None:
        """Why the service itself would not send this event, in words."""
        if self.filtered_reason is None:
            return None
        return FILTER_EXPLANATIONS.get(self.filtered_reason, self.filtered_reason)


async def send_test_event(
    config: IntegrationConfig, sample: Sample, transport: Transport, now: datetime | None = None
) -> SentTestEvent:
    """Send ``sample`` as ``config`` says. The caller builds ``config`` with
    :func:`~stream_wfm.console.views.check_form`, so saved header values in it are only
    those the saved config allows for its URLs (:mod:`~stream_wfm.console.saved`)."""
    event_id = f"test-{uuid.uuid4()}"
    kind = SAMPLE_KINDS[sample]
    raw = sample_event(sample, config.account_id, event_id, now or datetime.now(UTC))
    event = decode_event(orjson.dumps(raw), kind, event_id)
    filtered = decide(event, config)
    template = compile_template(config, kind)
    if template is None:
        return SentTestEvent(
            sample,
            event_id,
            None,
            config.send_body_as_json,
            (),
            False,
            False,
            "not sent",
            None,
            "no URL is set for this kind of event",
            0.0,
            0,
            filtered,
        )
    request = template.build(event)
    response = await transport.send_with_response(request, preview=BODY_READ_LIMIT)
    outcome = response.outcome
    return SentTestEvent(
        sample=sample,
        event_id=event_id,
        url=request.url,
        json_body=template.as_json,
        header_names=tuple(name for name, _ in request.headers if name != EVENT_ID_HEADER),
        signed=request.signed,
        delivered=outcome.kind is OutcomeKind.DELIVERED,
        outcome=str(outcome.kind),
        status=outcome.status,
        error=outcome.error,
        elapsed_ms=round(response.elapsed * 1000, 1),
        body_bytes=len(response.body_preview),
        filtered_reason=filtered,
    )
