"""Input events: bytes from an input topic → :class:`Event` (docs/contract.md §2).

The field lists of docs/contract.md §2 live here, once, in the contract's order. Decoding is
pure and cheap: one ``orjson.loads`` and a handful of checks, no model object.
The decoded JSON object is kept untouched in :attr:`Event.data`; only the
fields routing and ordering need are lifted out.

A value framed by a Confluent Schema Registry JSON serializer (magic byte 0, a 4-byte
big-endian schema id, then the JSON document) is read as its document: a JSON
document never starts with byte 0, so that one byte tells them apart, and the schema
id is ignored. The framing is only stripped for parsing; the record's value (kept in
retry and dead-letter records) stays as it was.

A record that is not a JSON object (RFC 8259: no ``NaN``, no invalid UTF-8,
no byte-order mark) or lacks a required field raises :class:`InvalidEventError`;
the caller dead-letters it with reason ``invalid_event``. Any other field may
hold anything: decoding never looks at it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

import orjson

from stream_wfm.errors import StreamWfmError

__all__ = [
    "AGENT_LOGIN_FIELDS",
    "AGENT_STATE_FIELDS",
    "CALL_FIELDS",
    "KEY_ACCOUNT_ID",
    "KEY_EVENT_AUX_TYPE",
    "KEY_EVENT_TYPE",
    "LOGIN",
    "LOGOUT",
    "MAX_EVENT_ID_LENGTH",
    "Event",
    "EventKind",
    "InvalidEventError",
    "complete_event",
    "decode_event",
    "parse_event",
    "payload_fields",
]


def _as_parsed_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` as the very ``str`` objects that :func:`orjson.loads` makes an object's
    keys (its key cache hands out one object per key): a lookup by one of them in a
    decoded event matches by identity instead of comparing characters (the template's
    payload, once per field and event). Only a matter of speed: equal strings match
    either way, so a key the cache no longer holds only costs its comparison."""
    return tuple(orjson.loads(orjson.dumps(dict.fromkeys(names))))


#: Agent login / logout (``event_type`` ``LOGIN`` or ``LOGOUT``), in the contract's order.
AGENT_LOGIN_FIELDS: tuple[str, ...] = _as_parsed_keys(
    (
        "external_agent_id",
        "duration",
        "agent_login_id",
        "account_id",
        "event_type",
        "agent_id",
        "date_time",
        "agent_phone",
        "username",
        "source_ip",
    )
)

#: Agent state change, in the contract's order; the last five only while on a call.
AGENT_STATE_FIELDS: tuple[str, ...] = _as_parsed_keys(
    (
        "agent_id",
        "prev_state",
        "prev_aux_state",
        "agent_phone",
        "source_ip",
        "external_agent_id",
        "duration",
        "agent_login_id",
        "account_id",
        "event_type",
        "event_aux_type",
        "date_time",
        "pending_disp",
        "username",
        "call_id",
        "call_source_id",
        "call_source_name",
        "dnis",
        "call_type",
    )
)

#: End call (``ACD-CALL`` inbound, ``VPD-CALL`` outbound), in the contract's order.
CALL_FIELDS: tuple[str, ...] = _as_parsed_keys(
    (
        "recording_url",
        "agent_id",
        "queue_duration",
        "agent_disposition",
        "gate_name",
        "call_state",
        "call_duration",
        "call_id",
        "external_agent_id",
        "account_id",
        "event_type",
        "gate_id",
        "call_start",
        "dnis",
        "ani",
        "username",
    )
)

#: Keys read from every decoded event, as its keys are (:func:`_as_parsed_keys`).
KEY_ACCOUNT_ID, KEY_EVENT_TYPE, KEY_EVENT_AUX_TYPE, _KEY_EVENT_ID, _KEY_AGENT_ID, _KEY_CALL_ID = (
    _as_parsed_keys(
        ("account_id", "event_type", "event_aux_type", "event_id", "agent_id", "call_id")
    )
)

#: ``event_type`` values of agent login and logout events (matched exactly).
LOGIN = "LOGIN"
LOGOUT = "LOGOUT"

#: An ``event_id`` longer than this is ignored (the fallback id is used).
MAX_EVENT_ID_LENGTH = 200


class EventKind(enum.StrEnum):
    """Which input topic an event came from."""

    AGENT = "agent"
    CALL = "call"


class InvalidEventError(StreamWfmError):
    """The record is not a valid event; dead-letter it as ``invalid_event``.

    ``detail`` says why in a few words and never contains the record's bytes.
    """

    retriable = False

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid event: {detail}")
        self.detail = detail


@dataclass(slots=True)
class Event:
    """A decoded input event.

    ``data`` is the decoded JSON object as it came. ``order_key`` names the
    sequence the event belongs to: ``account_id:agent_id`` for agent events
    and for call events an agent answered, ``account_id:call:call_id`` for
    call events without an agent.
    """

    kind: EventKind
    account_id: str
    event_type: str
    agent_id: str | None
    call_id: str | None
    event_id: str
    data: dict[str, Any]
    order_key: str


#: Bytes before the JSON document in a value framed by a Confluent Schema Registry JSON
#: serializer: magic byte 0, then the schema id (4 bytes, big-endian).
_FRAMING: Final = 5

#: What :func:`parse_event` checks, by kind: fields that must be non-empty strings.
_REQUIRED: dict[EventKind, tuple[str, ...]] = {
    EventKind.AGENT: (KEY_ACCOUNT_ID, KEY_EVENT_TYPE, _KEY_AGENT_ID),
    EventKind.CALL: (KEY_ACCOUNT_ID, KEY_EVENT_TYPE, _KEY_CALL_ID),
}
# Enum members and the lists above as module constants: in Python 3.11 ``EventKind.AGENT``
# runs a descriptor and a dict lookup keyed by a member runs ``Enum.__hash__`` (Python
# code), once per event each.
_AGENT: Final = EventKind.AGENT
_CALL: Final = EventKind.CALL
_AGENT_REQUIRED: Final = _REQUIRED[_AGENT]
_CALL_REQUIRED: Final = _REQUIRED[_CALL]


def _invalid_field(data: dict[str, Any], name: str) -> InvalidEventError:
    """What is wrong with the required field ``name``, known not to be a non-empty string."""
    if name not in data:
        return InvalidEventError(f"missing required field {name}")
    return InvalidEventError(f"field {name} is not a non-empty string")


def decode_event(
    value: bytes | None, kind: EventKind, fallback_event_id: str | tuple[str, int, int]
) -> Event:
    """Decode one input record's value into an :class:`Event`:
    :func:`parse_event` then :func:`complete_event`.

    ``fallback_event_id`` is used when the event has no usable ``event_id``: a
    usable one is a string of 1 to 200 printable ASCII characters without
    leading or trailing spaces (it is sent as a header). Given as the record's
    ``(topic, partition, offset)``, it becomes ``"topic:partition:offset"`` only
    when needed. Raises :class:`InvalidEventError` and nothing else.
    """
    return complete_event(parse_event(value, kind), kind, fallback_event_id)


def parse_event(value: bytes | None, kind: EventKind) -> dict[str, Any]:
    """The record's JSON object (unframed when a Schema Registry serializer framed it),
    its required fields checked: ``account_id`` and
    ``event_type``, and ``agent_id`` (agent events) or ``call_id`` (call events), each a
    non-empty string. Enough to route the event
    (:func:`stream_wfm.routing.decide_fields`), so the service completes an
    :class:`Event` only for events it sends. Raises :class:`InvalidEventError`.
    """
    if not value:
        raise InvalidEventError("empty value")
    try:
        # A JSON document never starts with byte 0: a value that does is framed.
        data = orjson.loads(value if value[0] else _unframed(value))
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(f"not valid JSON (error at position {exc.pos})") from None
    if type(data) is not dict:
        raise InvalidEventError("not a JSON object")
    # The three checks unrolled, the loop only to tell which failed (once per event: -0.46k
    # of 23.2k instructions per filtered event in the pipeline).
    account_id = data.get(KEY_ACCOUNT_ID)
    event_type = data.get(KEY_EVENT_TYPE)
    key = data.get(_KEY_AGENT_ID if kind is _AGENT else _KEY_CALL_ID)
    if not (
        type(account_id) is str and type(event_type) is str and type(key) is str
        and account_id and event_type and key
    ):  # fmt: skip
        for name in _AGENT_REQUIRED if kind is _AGENT else _CALL_REQUIRED:
            field = data.get(name)
            if type(field) is not str or not field:
                raise _invalid_field(data, name)
    return data


def _unframed(value: bytes) -> memoryview:
    """The JSON document inside a value framed by a Schema Registry serializer: magic
    byte 0 and a 4-byte big-endian schema id (ignored), then the document (no copy)."""
    if len(value) < _FRAMING:
        raise InvalidEventError(
            f"starts with byte 0 (schema registry framing) but is shorter than {_FRAMING} bytes"
        )
    if len(value) == _FRAMING:
        raise InvalidEventError("empty value after the schema registry framing")
    return memoryview(value)[_FRAMING:]


def complete_event(
    data: dict[str, Any], kind: EventKind, fallback_event_id: str | tuple[str, int, int]
) -> Event:
    """The :class:`Event` of a record's object that :func:`parse_event` accepted (see
    :func:`decode_event` for ``fallback_event_id``)."""
    account_id: str = data[KEY_ACCOUNT_ID]
    event_type: str = data[KEY_EVENT_TYPE]
    raw_id = data.get(_KEY_EVENT_ID)
    # Usable as the X-WFM-Event-Id header: 1 to MAX_EVENT_ID_LENGTH printable ASCII
    # characters (space to "~"), no leading or trailing space; what the regular
    # expression [!-~](?:[ -~]{0,198}[!-~])? matches (a unit test holds them equal), at
    # ~0.8k instructions per event where its fullmatch took ~2.5k.
    if (
        type(raw_id) is str
        and 0 < len(raw_id) <= MAX_EVENT_ID_LENGTH
        and raw_id.isascii()
        and raw_id.isprintable()
        and raw_id[0] != " "
        and raw_id[-1] != " "
    ):
        event_id = raw_id
    elif type(fallback_event_id) is str:
        event_id = fallback_event_id
    else:
        event_id = "{}:{}:{}".format(*fallback_event_id)
    if kind is _AGENT:
        agent_id: str | None = data[_KEY_AGENT_ID]  # required: parse_event checked it
        return Event(
            kind, account_id, event_type, agent_id, None, event_id, data,
            f"{account_id}:{agent_id}",
        )  # fmt: skip
    raw_agent = data.get(_KEY_AGENT_ID)
    agent_id = raw_agent if type(raw_agent) is str and raw_agent else None
    call_id: str = data[_KEY_CALL_ID]
    if agent_id is not None:
        return Event(
            kind, account_id, event_type, agent_id, call_id, event_id, data,
            f"{account_id}:{agent_id}",
        )  # fmt: skip
    return Event(
        kind, account_id, event_type, None, call_id, event_id, data,
        f"{account_id}:call:{call_id}",
    )  # fmt: skip


def payload_fields(event: Event) -> tuple[str, ...]:
    """The docs/contract.md §2 field list that the webhook payload of ``event`` uses."""
    if event.kind is _CALL:
        return CALL_FIELDS
    if event.event_type == LOGIN or event.event_type == LOGOUT:
        return AGENT_LOGIN_FIELDS
    return AGENT_STATE_FIELDS
