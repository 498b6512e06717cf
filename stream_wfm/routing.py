"""Which events are sent: docs/contract.md §4, as one pure function.

:func:`decide` returns ``None`` when the event is to be sent, else the reason
it is filtered out, one of :data:`FILTER_REASONS` (the ``reason`` label of
``stream_wfm_events_filtered_total``). Checks run in this order: no config,
disabled, no URL for the event's kind, then the event-type selection.

``LOGIN`` and ``LOGOUT`` are matched exactly (the platform sends them in
upper case); every other agent event is a state change.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from stream_wfm.events import (
    KEY_EVENT_AUX_TYPE,
    KEY_EVENT_TYPE,
    LOGIN,
    LOGOUT,
    Event,
    EventKind,
)

__all__ = [
    "DEFAULT_STATES",
    "ENDPOINT_DISABLED",
    "FILTER_REASONS",
    "Selection",
    "decide",
    "decide_fields",
    "is_default_state_event",
]


class Selection(Protocol):
    """What :func:`decide` reads of an integration: an
    :class:`~stream_wfm.integrations.model.IntegrationConfig`, or the compact
    :class:`~stream_wfm.integrations.store.Entry` the service routes with."""

    @property
    def enabled(self) -> bool: ...
    @property
    def disabled_reason(self) -> str | None: ...
    @property
    def has_agent_url(self) -> bool: ...
    @property
    def has_call_url(self) -> bool: ...
    @property
    def agent_states(self) -> bool: ...
    @property
    def send_all_agent_states(self) -> bool: ...
    @property
    def agent_login_events(self) -> bool: ...
    @property
    def agent_logout_events(self) -> bool: ...
    @property
    def end_call_events(self) -> bool: ...


#: The platform's default agent states (docs/contract.md §4).
DEFAULT_STATES: Final = (
    "AVAILABLE",
    "ON BREAK",
    "AWAY",
    "LUNCH",
    "TRAINING",
    "ENGAGED",
    "WORKING",
    "TRANSITION",
)

#: What :func:`decide` returns for an event the integration selects while the service has
#: disabled the integration for a failing endpoint: not a filter reason, the reason of
#: the dead letter the event becomes (docs/contract.md §10).
ENDPOINT_DISABLED: Final = "endpoint_disabled"

#: Every filter reason :func:`decide` can return (and :data:`ENDPOINT_DISABLED`).
FILTER_REASONS: Final = (
    "no_integration",
    "disabled",
    "no_url",
    "login_not_selected",
    "logout_not_selected",
    "state_not_selected",
    "custom_state_not_selected",
    "end_call_not_selected",
)


def _normalize(state: str) -> str:
    """Case, spaces and underscores ignored: ``On Break`` == ``ON_BREAK``."""
    return state.replace(" ", "").replace("_", "").casefold()


# A module constant: ``EventKind.CALL`` runs a descriptor in Python 3.11 (once per event).
_CALL: Final = EventKind.CALL

_DEFAULT_STATES_NORMALIZED: Final = frozenset(_normalize(state) for state in DEFAULT_STATES)


#: Answers of :func:`is_default_state_event` by (event_type, aux); bounded because both
#: come from the input (a flood of distinct values only stops the caching).
_DEFAULT_STATE_CACHE: dict[tuple[str, str | None], bool] = {}
_DEFAULT_STATE_CACHE_LIMIT: Final = 4096


def is_default_state_event(event_type: str, aux: Any) -> bool:
    """True when a state event with this ``event_type`` and ``event_aux_type``
    is a default-state event: ``event_type`` is a default state and ``aux`` is
    missing (None), empty (or only spaces/underscores) or names the same state.
    A non-string ``aux`` makes it a custom-state event."""
    if aux is not None and type(aux) is not str:
        return False
    key = (event_type, aux)
    known = _DEFAULT_STATE_CACHE.get(key)
    if known is None:
        known = _default_state_event(event_type, aux)
        if len(_DEFAULT_STATE_CACHE) < _DEFAULT_STATE_CACHE_LIMIT:
            _DEFAULT_STATE_CACHE[key] = known
    return known


def _default_state_event(event_type: str, aux: str | None) -> bool:
    state = _normalize(event_type)
    if state not in _DEFAULT_STATES_NORMALIZED:
        return False
    if aux is None:
        return True
    aux_state = _normalize(aux)
    return not aux_state or aux_state == state


def decide(event: Event, cfg: Selection | None) -> str | None:
    """``None``: send ``event``; otherwise the filter reason (docs/contract.md §4)."""
    return decide_fields(event.kind, event.data, cfg)


def decide_fields(kind: EventKind, data: dict[str, Any], cfg: Selection | None) -> str | None:
    """:func:`decide` for an event's JSON object that
    :func:`~stream_wfm.events.parse_event` accepted, before it becomes an
    :class:`~stream_wfm.events.Event` (the service makes one only for events it sends)."""
    if cfg is None:
        return "no_integration"
    # What a selected event gets: sent (None) or, when the service disabled the integration
    # for a failing endpoint, dead-lettered (docs/contract.md §10: an event the integration
    # selects is kept for a re-enable to redrive).
    sent = None
    if not cfg.enabled:
        if cfg.disabled_reason is None:
            return "disabled"
        sent = ENDPOINT_DISABLED
    if kind is _CALL:
        if not cfg.has_call_url:
            return "no_url"
        return sent if cfg.end_call_events else "end_call_not_selected"
    if not cfg.has_agent_url:
        return "no_url"
    event_type: str = data[KEY_EVENT_TYPE]
    if event_type == LOGIN:
        return sent if cfg.agent_login_events else "login_not_selected"
    if event_type == LOGOUT:
        return sent if cfg.agent_logout_events else "logout_not_selected"
    if cfg.send_all_agent_states:
        return sent
    aux = data.get(KEY_EVENT_AUX_TYPE)
    # is_default_state_event(event_type, aux), its cached answer looked up inline (once
    # per agent state event).
    if aux is None or type(aux) is str:
        default = _DEFAULT_STATE_CACHE.get((event_type, aux))
        if default is None:
            default = is_default_state_event(event_type, aux)
    else:
        default = False
    if default:
        return sent if cfg.agent_states else "state_not_selected"
    return "custom_state_not_selected"
