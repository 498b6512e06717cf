"""The config store's compact :class:`Entry`: routing fields copied out, the validated
model dropped and re-parsed from the record's bytes when something needs it."""

from __future__ import annotations

from stream_wfm.delivery.templates import TemplatedEntry as Entry
from stream_wfm.events import EventKind
from stream_wfm.integrations.model import config_to_record_value, validate_config


def _config() -> dict[str, object]:
    return {
        "account_id": "acct-1",
        "agent_event_url": "https://wfm.example.com/agent?x=1",
        "call_event_url": None,
        "send_body_as_json": True,
        "agent_states": True,
        "agent_logout_events": True,
        "headers": {"Authorization": "Basic c2VjcmV0"},
        "max_retries": 5,
        "timeout_seconds": 2.5,
    }


def test_an_entry_from_a_record_keeps_only_routing_fields_until_the_config_is_needed() -> None:
    config = validate_config(_config(), "acct-1")
    entry = Entry(config, config_to_record_value(config))
    assert entry._config is None  # no pydantic model kept per idle account
    assert (entry.account_id, entry.max_retries) == ("acct-1", 5)
    assert (entry.enabled, entry.has_agent_url, entry.has_call_url) == (True, True, False)
    assert (entry.agent_states, entry.agent_logout_events, entry.agent_login_events) == (
        True,
        True,
        False,
    )
    assert entry.config == config  # re-parsed from the bytes, then kept
    assert entry.config is entry.config
    template = entry.template(EventKind.AGENT)
    assert template is not None
    assert entry.template(EventKind.CALL) is None
    assert "c2VjcmV0" not in repr(entry)


def test_an_entry_of_a_model_keeps_the_model() -> None:
    config = validate_config(_config(), "acct-1")
    entry = Entry.compile(config)
    assert entry.config is config
