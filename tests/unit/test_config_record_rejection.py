"""docs/contract.md §3, invalid records: a config record with a duplicate JSON key, a
number beyond a double or an invisible character in its account_id is rejected (log line,
metric) and the account keeps its last valid config."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
import pytest

from stream_wfm.integrations.store import ConfigStore, Entry

SECRET = "Basic c2VjcmV0LWR1cGxpY2F0ZQ=="


@dataclass
class FakeMessage:
    """What the store reads of a consumed record."""

    _key: bytes | None
    _value: bytes | None
    _offset: int = 0

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


GOOD = orjson.dumps(
    {
        "account_id": "1",
        "agent_event_url": "https://wfm.example.com/agent",
        "headers": {"Authorization": "Basic Z29vZA=="},
    }
)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (
            b'{"account_id": "1", "agent_event_url": "https://wfm.example.com/agent",'
            b' "headers": {"Authorization": "Basic Z29vZA==", "Authorization": "'
            + SECRET.encode()
            + b'"}}',
            "headers: duplicate JSON key headers.Authorization",
        ),
        (
            b'{"account_id": "1", "agent_event_url": "https://a.example/",'
            b' "agent_event_url": "https://b.example/"}',
            "agent_event_url: duplicate JSON key agent_event_url",
        ),
        (
            b'{"account_id": "1", "max_retries": ' + b"9" * 5000 + b"}",
            "max_retries: must be an integer from 0 to 10",
        ),
    ],
    ids=["duplicate-header", "duplicate-url", "huge-number"],
)
def test_a_hardened_rejection_keeps_the_last_valid_config(
    value: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    rejected: list[None] = []
    store = ConfigStore("config", {}, entry_type=Entry, on_invalid=lambda: rejected.append(None))
    store._apply(FakeMessage(b"1", GOOD, 0))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "stream_wfm.integrations.store"):
        store._apply(FakeMessage(b"1", value, 1))  # type: ignore[arg-type]
    entry = store.get("1")
    assert entry is not None
    assert entry.config.agent_event_url == "https://wfm.example.com/agent"
    assert entry.config.headers["Authorization"].get_secret_value() == "Basic Z29vZA=="
    assert len(rejected) == 1
    [record] = [r for r in caplog.records if r.getMessage().startswith("invalid config record")]
    error = record.__dict__["error"]
    assert why in error
    assert SECRET not in error
    assert store.last_error == error


def test_an_account_id_with_a_bidi_control_is_rejected() -> None:
    account_id = "1\u202e2"
    rejected: list[None] = []
    store = ConfigStore("config", {}, entry_type=Entry, on_invalid=lambda: rejected.append(None))
    value = orjson.dumps({"account_id": account_id})
    store._apply(FakeMessage(account_id.encode(), value))  # type: ignore[arg-type]
    assert store.get(account_id) is None
    assert len(rejected) == 1
    assert store.last_error is not None
    assert "account_id: must not contain whitespace" in store.last_error
    assert "\u202e" not in store.last_error
