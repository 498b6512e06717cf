"""`stream-wfm config ...` and `stream-wfm topics create` exactly as docs/contract.md §8 words them,
run through the real CLI entry point against the real broker."""

from __future__ import annotations

import io
import os
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from stream_wfm.cli.main import main
from stream_wfm.integrations.model import MASK
from stream_wfm.kafka.admin import planned_topics
from stream_wfm.kafka.embedded import EmbeddedBroker
from stream_wfm.settings import Settings
from tests.helpers.settings import settings_env, unique_settings
from tests.helpers.topics import read_topic

pytestmark = pytest.mark.integration

ACCOUNT = "15300002"
SECRET = "Basic c3VwZXItc2VjcmV0LWNsaS12YWx1ZQ=="  # never printed unless --show-secrets
OTHER_SECRET = "tok-7f3a9c1e55d04b2b"

Cli = Callable[..., tuple[int, str, str]]


def integration(account_id: str = ACCOUNT, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "account_id": account_id,
        "enabled": True,
        "agent_event_url": "https://wfm.example.com/ringcx/agent",
        "call_event_url": "https://wfm.example.com/ringcx/call",
        "send_body_as_json": False,
        "agent_states": True,
        "agent_login_events": True,
        "end_call_events": True,
        "headers": {"Authorization": SECRET, "X-Tenant": OTHER_SECRET},
        "max_retries": 3,
        "timeout_seconds": 10,
    }
    config.update(changes)
    return config


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """``cli(settings_or_None, *argv)`` → (exit code, stdout, stderr).

    The environment holds exactly the STREAM_WFM_* variables of ``settings`` (none when
    ``None``); the working directory is empty, so no developer's ``.env`` leaks in.
    """
    monkeypatch.chdir(tmp_path)

    def run(settings: Settings | None, *argv: str) -> tuple[int, str, str]:
        for name in list(os.environ):
            if name.upper().startswith("STREAM_WFM_"):
                monkeypatch.delenv(name)
        if settings is not None:
            for name, value in settings_env(settings).items():
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[Any], str]:
    def write(data: Any) -> str:
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
        return str(path)

    return write


@pytest.fixture
def fresh_settings(broker: EmbeddedBroker) -> Callable[..., Settings]:
    """Settings with unique topic names whose topics are NOT created."""

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        own = {"notices_topic": f"t-{tag}-notices", "health_topic": f"t-{tag}-health"}
        return unique_settings(broker.bootstrap_servers, topic_partitions=2, **own, **overrides)

    return make


def admin_client(settings: Settings) -> AdminClient:
    assert settings.bootstrap_servers is not None
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers})


def topic_names(settings: Settings) -> set[str]:
    return set(admin_client(settings).list_topics(timeout=10).topics)


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """The topic's configs as the broker describes them."""
    admin = admin_client(settings)  # kept alive until the result is in
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {name: entry.value for name, entry in entries.items()}


def statuses(out: str) -> dict[str, str]:
    """``topics create`` output (``<status> <topic>`` lines) as topic → status."""
    pairs = (line.split() for line in out.splitlines())
    return {topic: status for status, topic in pairs}


def records_by_key(settings: Settings) -> list[tuple[str, bytes | None]]:
    return [
        (msg.key().decode(), msg.value()) for msg in read_topic(settings, settings.config_topic)
    ]


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


# --- validate ---------------------------------------------------------------------------


def test_validate_good_file(cli: Cli, config_file: Callable[[Any], str]) -> None:
    code, out, err = cli(None, "config", "validate", "--file", config_file(integration()))
    assert code == 0, err
    assert f"valid integration config for account {ACCOUNT}" in out
    assert SECRET not in out + err


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"agent_event_url": "ftp://wfm.example.com/agent"}, "agent_event_url"),
        ({"call_event_url": "https://user:pw@wfm.example.com/call"}, "call_event_url"),
        ({"max_retries": 11}, "max_retries"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"enabled": "yes"}, "enabled"),
        ({"headers": {"Authorization": SECRET + "\r\nX-Injected: 1"}}, "headers"),
        ({"headers": {"Host": SECRET}}, "headers"),
        ({"headers": {"X-Tenant": 42, "Authorization": SECRET}}, "headers"),
        ({"account_id": ""}, "account_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_validate_bad_file_names_the_field_never_a_header_value(
    cli: Cli, config_file: Callable[[Any], str], changes: dict[str, Any], field: str
) -> None:
    code, out, err = cli(None, "config", "validate", "--file", config_file(integration(**changes)))
    assert code != 0
    assert field in err, err
    assert "invalid" in err
    assert SECRET not in out + err
    assert "c3VwZXItc2VjcmV0" not in out + err
    assert OTHER_SECRET not in out + err


def test_validate_not_json_and_missing_file(cli: Cli, config_file: Callable[[Any], str]) -> None:
    code, _, err = cli(None, "config", "validate", "--file", config_file(b'{"account_id": '))
    assert code != 0
    assert "not valid JSON" in err
    code, _, err = cli(None, "config", "validate", "--file", "/nonexistent/config.json")
    assert code != 0
    assert "cannot read /nonexistent/config.json" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            b'{"account_id": "15300002", "headers": {"Authorization": "Basic b25l",'
            b' "Authorization": "' + SECRET.encode() + b'"}}',
            "headers: duplicate JSON key headers.Authorization",
        ),
        (
            b'{"account_id": "15300002", "agent_event_url": "https://a.example/",'
            b' "agent_event_url": "https://b.example/"}',
            "agent_event_url: duplicate JSON key agent_event_url",
        ),
        (
            b'{"account_id": "15300002", "max_retries": ' + b"9" * 5000 + b"}",
            "max_retries: must be an integer from 0 to 10",
        ),
        (
            b'{"account_id": "15300\\u200b002"}',
            "account_id: must not contain whitespace",
        ),
    ],
    ids=["duplicate-header", "duplicate-url", "huge-number", "zero-width-space"],
)
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_validate_refuses_duplicate_keys_huge_numbers_and_invisible_characters(
    cli: Cli,
    config_file: Callable[[Any], str],
    monkeypatch: pytest.MonkeyPatch,
    text: bytes,
    expected: str,
    source: str,
) -> None:
    if source == "stdin":
        set_stdin(monkeypatch, text)
        path = "-"
    else:
        path = config_file(text)
    code, out, err = cli(None, "config", "validate", "--file", path)
    assert code != 0
    assert expected in err, err
    assert "Traceback" not in err
    assert "valid integration config" not in out
    assert SECRET not in out + err
    assert "b25l" not in out + err


def test_put_with_a_duplicate_key_writes_nothing(
    cli: Cli, settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    text = b'{"enabled": false, "enabled": true, "headers": {"X-A": "1", "X-A": "2"}}'
    set_stdin(monkeypatch, text)
    code, _, err = cli(settings, "config", "put", ACCOUNT, "--file", "-")
    assert code != 0
    assert "nothing written" in err
    assert "enabled: duplicate JSON key enabled" in err
    assert "headers: duplicate JSON key headers.X-A" in err
    assert records_by_key(settings) == []


# --- put ----------------------------------------------------------------------------------


def test_put_from_file_writes_the_validated_record(
    cli: Cli, settings_factory: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = settings_factory()
    code, out, err = cli(settings, "config", "put", ACCOUNT, "--file", config_file(integration()))
    assert code == 0, err
    assert f"saved integration for account {ACCOUNT}" in out
    assert SECRET not in out + err
    [(key, value)] = records_by_key(settings)
    assert key == ACCOUNT
    assert value is not None
    written = orjson.loads(value)
    assert written["account_id"] == ACCOUNT
    assert written["headers"] == {"Authorization": SECRET, "X-Tenant": OTHER_SECRET}
    assert written["agent_event_url"] == "https://wfm.example.com/ringcx/agent"
    # Defaults filled in: the record is the whole config (docs/contract.md §3).
    assert written["send_all_agent_states"] is False


def test_put_from_stdin(
    cli: Cli, settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    # Only account_id is required; it may even be left out and taken from the argument.
    set_stdin(monkeypatch, orjson.dumps({"agent_login_events": True}))
    code, _, err = cli(settings, "config", "put", "42", "--file", "-")
    assert code == 0, err
    [(key, value)] = records_by_key(settings)
    assert key == "42"
    assert value is not None
    written = orjson.loads(value)
    assert written["account_id"] == "42"
    assert written["agent_login_events"] is True
    assert written["headers"] == {}
    assert written["max_retries"] == 3


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_put_invalid_writes_nothing(
    cli: Cli,
    settings_factory: Callable[..., Settings],
    config_file: Callable[[Any], str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    settings = settings_factory()
    bad = integration(max_retries=99, agent_event_url="not a url")
    if source == "stdin":
        set_stdin(monkeypatch, orjson.dumps(bad))
        path = "-"
    else:
        path = config_file(bad)
    code, out, err = cli(settings, "config", "put", ACCOUNT, "--file", path)
    assert code != 0
    assert "nothing written" in err
    assert "max_retries" in err
    assert "agent_event_url" in err
    assert SECRET not in out + err
    assert records_by_key(settings) == []


def test_put_refuses_an_account_id_other_than_the_argument(
    cli: Cli, settings_factory: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = settings_factory()
    code, _, err = cli(
        settings, "config", "put", "15300003", "--file", config_file(integration(ACCOUNT))
    )
    assert code != 0
    assert "account_id" in err
    assert "15300003" in err
    assert records_by_key(settings) == []


def test_put_without_the_config_topic_hints_topics_create(
    cli: Cli, fresh_settings: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = fresh_settings()
    code, _, err = cli(settings, "config", "put", ACCOUNT, "--file", config_file(integration()))
    assert code != 0
    assert settings.config_topic in err
    assert "stream-wfm topics create" in err
    assert settings.config_topic not in topic_names(settings), "the put must not auto-create"


# --- get / list / delete ----------------------------------------------------------------


def test_get_masks_header_values_unless_show_secrets(
    cli: Cli, settings_factory: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = settings_factory()
    assert cli(settings, "config", "put", ACCOUNT, "--file", config_file(integration()))[0] == 0

    code, out, err = cli(settings, "config", "get", ACCOUNT)
    assert code == 0, err
    shown = orjson.loads(out)
    assert shown["account_id"] == ACCOUNT
    assert shown["agent_event_url"] == "https://wfm.example.com/ringcx/agent"
    assert shown["headers"] == {"Authorization": MASK, "X-Tenant": MASK}
    assert SECRET not in out + err
    assert OTHER_SECRET not in out + err

    code, out, err = cli(settings, "config", "get", ACCOUNT, "--show-secrets")
    assert code == 0, err
    assert orjson.loads(out)["headers"] == {"Authorization": SECRET, "X-Tenant": OTHER_SECRET}


def test_get_unknown_account_exits_1(cli: Cli, settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    code, out, err = cli(settings, "config", "get", "no-such-account")
    assert code == 1
    assert out == ""
    assert "no integration for account no-such-account" in err


def test_list_table_and_json(
    cli: Cli, settings_factory: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = settings_factory()
    second = integration(
        "15300003",
        enabled=False,
        send_body_as_json=True,
        agent_states=False,
        agent_login_events=False,
        call_event_url=None,
    )
    for account, config in ((ACCOUNT, integration()), ("15300003", second)):
        assert cli(settings, "config", "put", account, "--file", config_file(config))[0] == 0

    code, out, err = cli(settings, "config", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "ACCOUNT",
        "ENABLED",
        "FORMAT",
        "EVENTS",
        "AGENT",
        "URL",
        "CALL",
        "URL",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows[ACCOUNT][:4] == [ACCOUNT, "yes", "url", "states,login,end-call"]
    assert rows["15300003"][:4] == ["15300003", "no", "json", "end-call"]
    assert rows["15300003"][-1] == "-"  # no call URL
    assert lines[-1] == "2 integration(s)"
    assert SECRET not in out + err

    code, out, err = cli(settings, "config", "list", "--json")
    assert code == 0, err
    listed = [orjson.loads(line) for line in out.splitlines()]
    assert [c["account_id"] for c in listed] == [ACCOUNT, "15300003"]
    assert listed[0]["headers"] == {"Authorization": MASK, "X-Tenant": MASK}
    assert listed[1]["enabled"] is False
    assert SECRET not in out + err


def test_list_empty(cli: Cli, settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    code, out, _ = cli(settings, "config", "list")
    assert code == 0
    assert out.splitlines()[-1] == "0 integration(s)"
    code, out, _ = cli(settings, "config", "list", "--json")
    assert code == 0
    assert out == ""


def test_delete_writes_a_tombstone(
    cli: Cli, settings_factory: Callable[..., Settings], config_file: Callable[[Any], str]
) -> None:
    settings = settings_factory()
    assert cli(settings, "config", "put", ACCOUNT, "--file", config_file(integration()))[0] == 0
    code, out, err = cli(settings, "config", "delete", ACCOUNT)
    assert code == 0, err
    assert f"deleted integration for account {ACCOUNT}" in out
    records = records_by_key(settings)
    assert [key for key, _ in records] == [ACCOUNT, ACCOUNT]
    assert records[-1][1] is None, "the last record for the account must be a tombstone"

    code, _, err = cli(settings, "config", "get", ACCOUNT)
    assert code == 1
    assert f"no integration for account {ACCOUNT}" in err
    code, out, _ = cli(settings, "config", "list", "--json")
    assert out == ""


# --- topics create --------------------------------------------------------------------------


def test_topics_create_is_idempotent_and_compacts_the_config_topic(
    cli: Cli, fresh_settings: Callable[..., Settings]
) -> None:
    settings = fresh_settings()
    expected = {t.name for t in planned_topics(settings)}
    assert expected == {
        settings.agent_events_topic,
        settings.call_events_topic,
        settings.config_topic,
        *settings.retry_topics(),
        settings.dlq_topic,
        settings.notices_topic,
        settings.health_topic,
    }

    code, out, err = cli(settings, "topics", "create")
    assert code == 0, err
    assert statuses(out) == dict.fromkeys(expected, "created")
    assert expected <= topic_names(settings)

    code, out, err = cli(settings, "topics", "create")
    assert code == 0, err
    assert statuses(out) == dict.fromkeys(expected, "exists")

    assert topic_config(settings, settings.config_topic)["cleanup.policy"] == "compact"
    # Input topics keep the broker's default (delete): old events must age out.
    agent_config = topic_config(settings, settings.agent_events_topic)
    assert agent_config.get("cleanup.policy", "delete") == "delete"
    # Notices age out after 30 days; health records are compacted per key and also age out
    # after a day, so the keys of instances that went away do not stay for ever (§10).
    notices_config = topic_config(settings, settings.notices_topic)
    assert notices_config.get("cleanup.policy", "delete") == "delete"
    assert notices_config["retention.ms"] == str(30 * 86_400_000)
    health_config = topic_config(settings, settings.health_topic)
    assert health_config["cleanup.policy"] == "compact,delete"
    assert health_config["retention.ms"] == str(86_400_000)


# --- no broker configured -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("topics", "create"),
        ("config", "put", ACCOUNT, "--file", "GOOD"),
        ("config", "get", ACCOUNT),
        ("config", "list"),
        ("config", "delete", ACCOUNT),
        ("config", "enable", ACCOUNT),
    ],
    ids=" ".join,
)
def test_commands_needing_a_broker_without_bootstrap_servers(
    cli: Cli, config_file: Callable[[Any], str], argv: tuple[str, ...]
) -> None:
    argv = tuple(config_file(integration()) if a == "GOOD" else a for a in argv)
    code, out, err = cli(None, *argv)
    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error: STREAM_WFM_BOOTSTRAP_SERVERS is not set")
