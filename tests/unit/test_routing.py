"""docs/contract.md §4: which events are sent."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.events import Event, EventKind
from stream_wfm.integrations.model import (
    IntegrationConfig,
    config_to_record_value,
    validate_config,
)
from stream_wfm.integrations.store import Entry
from stream_wfm.routing import (
    DEFAULT_STATES,
    ENDPOINT_DISABLED,
    FILTER_REASONS,
    decide,
    is_default_state_event,
)

AGENT_URL = "https://wfm.example.com/agent"
CALL_URL = "https://wfm.example.com/call"
MISSING = object()


def config(**fields: Any) -> IntegrationConfig:
    base: dict[str, Any] = {
        "account_id": "1",
        "agent_event_url": AGENT_URL,
        "call_event_url": CALL_URL,
    }
    return validate_config({**base, **fields})


def agent_event(event_type: str, aux: Any = MISSING) -> Event:
    data: dict[str, Any] = {"account_id": "1", "agent_id": "a", "event_type": event_type}
    if aux is not MISSING:
        data["event_aux_type"] = aux
    return Event(EventKind.AGENT, "1", event_type, "a", None, "e", data, "1:a")


def call_event(event_type: str = "ACD-CALL") -> Event:
    data = {"account_id": "1", "call_id": "c", "event_type": event_type}
    return Event(EventKind.CALL, "1", event_type, None, "c", "e", data, "1:call:c")


ALL_ON = {
    "agent_states": True,
    "send_all_agent_states": True,
    "agent_login_events": True,
    "agent_logout_events": True,
    "end_call_events": True,
}


# --- integration-level rules, in order ----------------------------------------


@pytest.mark.parametrize("event", [agent_event("LOGIN"), agent_event("AVAILABLE"), call_event()])
def test_no_config_is_no_integration(event: Event) -> None:
    assert decide(event, None) == "no_integration"


@pytest.mark.parametrize("event", [agent_event("LOGIN"), agent_event("AVAILABLE"), call_event()])
def test_disabled_is_checked_before_urls_and_selections(event: Event) -> None:
    cfg = config(enabled=False, agent_event_url=None, call_event_url=None)
    assert decide(event, cfg) == "disabled"
    assert decide(event, config(enabled=False, **ALL_ON)) == "disabled"


@pytest.mark.parametrize(
    ("event", "missing_url"),
    [
        (agent_event("LOGIN"), "agent_event_url"),
        (agent_event("AVAILABLE"), "agent_event_url"),
        (agent_event("Coaching"), "agent_event_url"),
        (call_event(), "call_event_url"),
    ],
)
def test_no_url_for_the_kind(event: Event, missing_url: str) -> None:
    assert decide(event, config(**{missing_url: None, **ALL_ON})) == "no_url"
    # The URL of the other kind does not matter.
    other = "call_event_url" if missing_url == "agent_event_url" else "agent_event_url"
    assert decide(event, config(**{other: None, **ALL_ON})) is None


def test_no_url_is_checked_before_selection() -> None:
    assert decide(call_event(), config(call_event_url=None)) == "no_url"


# --- selections ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "selection", "reason"),
    [
        (agent_event("LOGIN"), "agent_login_events", "login_not_selected"),
        (agent_event("LOGOUT"), "agent_logout_events", "logout_not_selected"),
        (call_event("ACD-CALL"), "end_call_events", "end_call_not_selected"),
        (call_event("VPD-CALL"), "end_call_events", "end_call_not_selected"),
    ],
)
def test_single_selection_rules(event: Event, selection: str, reason: str) -> None:
    assert decide(event, config(**{selection: True})) is None
    assert decide(event, config(**{selection: False})) == reason
    others_on = {name: True for name in ALL_ON if name != selection}
    assert decide(event, config(**others_on)) == reason


@pytest.mark.parametrize(
    ("agent_states", "send_all", "default_result", "custom_result"),
    [
        (False, False, "state_not_selected", "custom_state_not_selected"),
        (True, False, None, "custom_state_not_selected"),
        (False, True, None, None),
        (True, True, None, None),
    ],
)
def test_state_selection_matrix(
    agent_states: bool, send_all: bool, default_result: str | None, custom_result: str | None
) -> None:
    cfg = config(agent_states=agent_states, send_all_agent_states=send_all)
    assert decide(agent_event("AVAILABLE", ""), cfg) == default_result
    assert decide(agent_event("AVAILABLE", "Coaching"), cfg) == custom_result
    assert decide(agent_event("Coaching"), cfg) == custom_result


def test_login_and_logout_are_not_state_events() -> None:
    cfg = config(agent_states=True, send_all_agent_states=True)
    assert decide(agent_event("LOGIN"), cfg) == "login_not_selected"
    assert decide(agent_event("LOGOUT"), cfg) == "logout_not_selected"


# --- default vs custom states ---------------------------------------------------

DEFAULT_STATE_CASES = [
    # (event_type, event_aux_type) that are default-state events
    *((state, MISSING) for state in DEFAULT_STATES),
    *((state, None) for state in DEFAULT_STATES),
    *((state, "") for state in DEFAULT_STATES),
    *((state, state) for state in DEFAULT_STATES),
    *((state.lower(), state.title()) for state in DEFAULT_STATES),
    ("ON_BREAK", ""),
    ("ON_BREAK", "ON BREAK"),
    ("ON BREAK", "ON_BREAK"),
    ("ON BREAK", "On Break"),
    ("On Break", "on_break"),
    ("ON BREAK", "onbreak"),
    ("ONBREAK", MISSING),
    ("AVAILABLE", "Available"),
    ("AVAILABLE", " "),
    ("Lunch", "LUNCH"),
]

CUSTOM_STATE_CASES = [
    ("ON BREAK", "Coaching Session"),
    ("AVAILABLE", "Outbound Only"),
    ("AVAILABLE", "AWAY"),  # names a different default state
    ("AWAY", "ON BREAK"),
    ("ON BREAK", "BREAK"),
    ("Coaching", MISSING),
    ("Coaching", ""),
    ("MEETING", "MEETING"),
    ("AVAILABLE-2", ""),
    ("LOGGED IN", ""),
    ("AVAILABLE", 0),
    ("AVAILABLE", False),
    ("AVAILABLE", ["AVAILABLE"]),
    ("AVAILABLE", {"name": "AVAILABLE"}),
]


@pytest.mark.parametrize(("event_type", "aux"), DEFAULT_STATE_CASES)
def test_default_state_events(event_type: str, aux: Any) -> None:
    event = agent_event(event_type, aux)
    assert is_default_state_event(event_type, None if aux is MISSING else aux)
    assert decide(event, config(agent_states=True)) is None
    assert decide(event, config()) == "state_not_selected"


@pytest.mark.parametrize(("event_type", "aux"), CUSTOM_STATE_CASES)
def test_custom_state_events(event_type: str, aux: Any) -> None:
    event = agent_event(event_type, aux)
    assert not is_default_state_event(event_type, None if aux is MISSING else aux)
    assert decide(event, config(agent_states=True)) == "custom_state_not_selected"
    assert decide(event, config(send_all_agent_states=True)) is None


def test_the_default_states_are_the_spec_list() -> None:
    assert DEFAULT_STATES == (
        "AVAILABLE", "ON BREAK", "AWAY", "LUNCH", "TRAINING", "ENGAGED", "WORKING", "TRANSITION",
    )  # fmt: skip


def test_filter_reasons_are_the_closed_set() -> None:
    assert set(FILTER_REASONS) == {
        "no_integration", "disabled", "no_url", "login_not_selected", "logout_not_selected",
        "state_not_selected", "custom_state_not_selected", "end_call_not_selected",
    }  # fmt: skip


# --- property: agreement with an independent reference ---------------------------

_REFERENCE_DEFAULTS = {"AVAILABLE", "ONBREAK", "AWAY", "LUNCH", "TRAINING", "ENGAGED", "WORKING",
                       "TRANSITION"}  # fmt: skip


def _squash(text: str) -> str:
    return re.sub(r"[ _]", "", text).upper()


def reference_decide(kind: str, event_type: str, aux: Any, cfg: dict[str, Any] | None) -> str:
    """docs/contract.md §4 written out independently; "send" means sent."""
    if cfg is None:
        return "no_integration"
    if not cfg["enabled"]:
        if cfg.get("disabled_reason") is None:
            return "disabled"
        selected = reference_decide(kind, event_type, aux, {**cfg, "enabled": True})
        return "endpoint_disabled" if selected == "send" else selected
    if not cfg["agent_event_url" if kind == "agent" else "call_event_url"]:
        return "no_url"
    if kind == "call":
        return "send" if cfg["end_call_events"] else "end_call_not_selected"
    if event_type == "LOGIN":
        return "send" if cfg["agent_login_events"] else "login_not_selected"
    if event_type == "LOGOUT":
        return "send" if cfg["agent_logout_events"] else "logout_not_selected"
    base = _squash(event_type)
    aux_ok = aux is None or (isinstance(aux, str) and _squash(aux) in ("", base))
    is_default = base in _REFERENCE_DEFAULTS and aux_ok
    if cfg["send_all_agent_states"] or (cfg["agent_states"] and is_default):
        return "send"
    return "state_not_selected" if is_default else "custom_state_not_selected"


ASCII = st.characters(min_codepoint=0, max_codepoint=127)
state_words = st.sampled_from(
    ["LOGIN", "LOGOUT", "AVAILABLE", "ON BREAK", "ON_BREAK", "On Break", "on_break", "away",
     "Lunch", "TRAINING", "ENGAGED", "WORKING", "TRANSITION", "Coaching", "", " ", "_",
     "AVAIL ABLE", "ACD-CALL", "VPD-CALL"]
)  # fmt: skip
event_types = state_words | st.text(alphabet="AVILBEONRK _akw", min_size=1, max_size=12)
aux_values = st.one_of(
    st.just(MISSING), st.none(), state_words, st.text(alphabet=ASCII, max_size=10),
    st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2),
)  # fmt: skip
config_dicts = st.none() | st.fixed_dictionaries(
    {
        "enabled": st.booleans(),
        "agent_event_url": st.sampled_from([None, "", AGENT_URL]),
        "call_event_url": st.sampled_from([None, "", CALL_URL]),
        "disabled_reason": st.sampled_from([None, "endpoint_failing"]),
        **{name: st.booleans() for name in ALL_ON},
    }
).map(
    # Only a disabled integration may carry a disabled_reason (config validation).
    lambda d: {**d, "disabled_reason": None} if d["enabled"] else d
)


@given(st.sampled_from(["agent", "call"]), event_types, aux_values, config_dicts)
def test_decide_agrees_with_reference(
    kind: str, event_type: str, aux: Any, cfg_dict: dict[str, Any] | None
) -> None:
    event = agent_event(event_type, aux) if kind == "agent" else call_event(event_type)
    cfg = None if cfg_dict is None else validate_config({"account_id": "1", **cfg_dict})
    expected = reference_decide(kind, event_type, None if aux is MISSING else aux, cfg_dict)
    result = decide(event, cfg)
    assert (result or "send") == expected
    assert result is None or result in FILTER_REASONS or result == ENDPOINT_DISABLED
    # The service routes with the compact entry built from the config record's bytes.
    entry = None if cfg is None else Entry(cfg, config_to_record_value(cfg))
    assert decide(event, entry) == result
