"""The webhook payload (docs/contract.md §2, §5): the listed fields the event has, in list
order, whatever the order and extra keys of the decoded event; checked against the plain
field-by-field pick."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.delivery import payload as payload_module
from stream_wfm.delivery.payload import Payload
from stream_wfm.events import AGENT_LOGIN_FIELDS, AGENT_STATE_FIELDS, CALL_FIELDS

FIELD_LISTS = (AGENT_LOGIN_FIELDS, AGENT_STATE_FIELDS, CALL_FIELDS)
EXTRA_KEYS = ("event_id", "tenant", "schema_version", "zzz")


def reference(fields: tuple[str, ...], data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, data[name]) for name in fields if name in data]


@st.composite
def events(draw: st.DrawFn) -> tuple[tuple[str, ...], dict[str, Any]]:
    fields = draw(st.sampled_from(FIELD_LISTS))
    keys = draw(st.lists(st.sampled_from(fields + EXTRA_KEYS), unique=True))
    if draw(st.booleans()):  # the platform's own order, as producers send it
        keys.sort(key=lambda k: fields.index(k) if k in fields else -1)
    values = st.one_of(st.none(), st.text(max_size=3), st.integers(), st.booleans())
    return fields, {key: draw(values) for key in keys}


@given(events())
def test_the_payload_is_the_listed_fields_in_list_order(
    event: tuple[tuple[str, ...], dict[str, Any]],
) -> None:
    fields, data = event
    before = dict(data)
    payload = Payload(fields)
    for _ in range(2):  # planned, then from the kept plan
        assert list(payload.of(data).items()) == reference(fields, data)
    assert list(data.items()) == list(before.items())  # the event is left as it was


def test_a_decoded_event_with_only_listed_fields_in_order_is_its_own_payload() -> None:
    data = {"account_id": "1", "event_type": "LOGIN"}
    assert Payload(AGENT_LOGIN_FIELDS).of(data) is data


def test_shapes_beyond_the_kept_number_are_planned_per_event(monkeypatch: Any) -> None:
    monkeypatch.setattr(payload_module, "PLANS_KEPT", 2)
    payload = Payload(AGENT_LOGIN_FIELDS)
    shapes = [
        {"account_id": "1", "event_type": "LOGIN"},
        {"event_type": "LOGIN", "account_id": "1"},
        {"event_id": "e", "account_id": "1", "event_type": "LOGIN"},
        {"username": "u", "event_type": "LOGIN", "account_id": "1"},
    ]
    for data in shapes * 2:
        assert list(payload.of(data).items()) == reference(AGENT_LOGIN_FIELDS, data)
    assert len(payload._plans) == 2


def test_a_shape_of_more_keys_than_kept_is_planned_per_event() -> None:
    payload = Payload(AGENT_LOGIN_FIELDS)
    data = {**{f"x{n}": n for n in range(payload_module.PLAN_MAX_KEYS)}, "account_id": "1"}
    assert list(payload.of(data).items()) == [("account_id", "1")]
    assert payload.plan(data).present == ("account_id",)
    assert payload._plans == {}
