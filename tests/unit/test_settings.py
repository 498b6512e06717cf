"""Settings: STREAM_WFM_* names, librdkafka pass-through, one clear line per bad setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.errors import SettingsError
from stream_wfm.settings import Settings, load_settings, parse_backoff


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("STREAM_WFM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def test_defaults_match_the_spec() -> None:
    s = load_settings()
    assert (s.agent_events_topic, s.call_events_topic, s.config_topic) == (
        "wfm.agent-events", "wfm.call-events", "wfm.integrations",
    )  # fmt: skip
    assert (s.retry_topic_prefix, s.dlq_topic, s.group_id) == (
        "wfm.webhooks.retry", "wfm.webhooks.dlq", "stream-wfm",
    )  # fmt: skip
    assert s.retry_topics() == [
        "wfm.webhooks.retry.10s", "wfm.webhooks.retry.1m", "wfm.webhooks.retry.10m",
        "wfm.webhooks.retry.1h",
    ]  # fmt: skip
    assert (s.http_port, s.console_port, s.shutdown_timeout) == (9108, 9109, 30.0)
    assert s.allow_private_destinations is False
    assert s.bootstrap_servers is None


@pytest.mark.parametrize(
    ("env", "prop", "value"),
    [
        ("STREAM_WFM_KAFKA__SECURITY_PROTOCOL", "security.protocol", "SASL_SSL"),
        ("stream_wfm_kafka__session_timeout_ms", "session.timeout.ms", "6000"),
        ("STREAM_WFM_KAFKA__SASL_MECHANISMS", "sasl.mechanisms", "PLAIN"),
        ("STREAM_WFM_KAFKA__SSL_CA_LOCATION", "ssl.ca.location", "/etc/ca.pem"),
        ("STREAM_WFM_KAFKA__LOG_LEVEL", "log_level", "3"),
    ],
)
def test_librdkafka_pass_through(
    monkeypatch: pytest.MonkeyPatch, env: str, prop: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    assert load_settings().kafka == {prop: value}


def test_kafka_secrets_are_masked_for_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_WFM_KAFKA__SASL_PASSWORD", "hunter2")
    s = load_settings()
    assert s.kafka["sasl.password"] == "hunter2"
    assert "hunter2" not in str(s.kafka_for_logs())


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("STREAM_WFM_HTTP_PORT", "abc"),
        ("STREAM_WFM_HTTP_PORT", "70000"),
        ("STREAM_WFM_RETRY_BACKOFF", "10x"),
        ("STREAM_WFM_RETRY_BACKOFF", "1m,10s"),
        ("STREAM_WFM_SHUTDOWN_TIMEOUT", "-1"),
        ("STREAM_WFM_LOG_FORMAT", "xml"),
        ("STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS", "maybe"),
        ("STREAM_WFM_MAX_IN_FLIGHT", "0"),
    ],
)
def test_invalid_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {env}:")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError, match="frozen"):
        s.group_id = "other"  # type: ignore[misc]


@given(st.lists(st.tuples(st.integers(1, 500), st.sampled_from("smh")), min_size=1, max_size=6))
def test_backoff_parses_distinct_non_decreasing_tiers(tiers: list[tuple[int, str]]) -> None:
    unit = {"s": 1, "m": 60, "h": 3600}
    text = ",".join(f"{n}{u}" for n, u in tiers)
    seconds = [n * unit[u] for n, u in tiers]
    names = [f"{n}{u}" for n, u in tiers]
    valid = seconds == sorted(seconds) and len(set(names)) == len(names)
    if valid:
        assert parse_backoff(text) == tuple(zip(names, seconds, strict=True))
    else:
        with pytest.raises(ValueError, match=r"shorter than the tier before|distinct"):
            parse_backoff(text)


def test_the_console_binds_to_loopback_and_trusts_no_proxy_by_default() -> None:
    s = load_settings()
    assert s.console_host == "127.0.0.1"
    assert s.console_trusted_proxies is None
    assert s.console_trusted_networks == ()


def test_trusted_proxies_are_addresses_or_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_WFM_CONSOLE_TRUSTED_PROXIES", " 10.0.0.0/8, 192.0.2.1 ,fd00::/8,")
    networks = load_settings().console_trusted_networks
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.0.2.1/32", "fd00::/8"]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example", "10.0.0.1/8/1"])
def test_a_bad_trusted_proxy_is_a_clear_settings_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STREAM_WFM_CONSOLE_TRUSTED_PROXIES", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("invalid setting STREAM_WFM_CONSOLE_TRUSTED_PROXIES:")
    assert repr(value) in str(caught.value)


def test_a_short_console_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_WFM_CONSOLE_SECRET_KEY", "x" * 31)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid setting STREAM_WFM_CONSOLE_SECRET_KEY:")
    assert "at least 32 characters" in message
    assert "x" * 31 not in message
    monkeypatch.setenv("STREAM_WFM_CONSOLE_SECRET_KEY", "x" * 32)
    secret = load_settings().console_secret_key
    assert secret is not None
    assert secret.get_secret_value() == "x" * 32


@pytest.mark.parametrize(
    ("env", "field", "prop", "value"),
    [
        ("STREAM_WFM_CONSUMER__SESSION_TIMEOUT_MS", "consumer", "session.timeout.ms", "6000"),
        ("stream_wfm_consumer__group_protocol", "consumer", "group.protocol", "consumer"),
        ("STREAM_WFM_PRODUCER__LINGER_MS", "producer", "linger.ms", "20"),
        ("STREAM_WFM_PRODUCER__LOG_LEVEL", "producer", "log_level", "3"),
        ("STREAM_WFM_ADMIN__SOCKET_TIMEOUT_MS", "admin", "socket.timeout.ms", "5000"),
    ],
)
def test_per_client_pass_through(
    monkeypatch: pytest.MonkeyPatch, env: str, field: str, prop: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    s = load_settings()
    assert getattr(s, field) == {prop: value}
    others = {"kafka", "consumer", "producer", "admin"} - {field}
    assert all(getattr(s, name) == {} for name in others)


def test_kafka_auth_and_instance_id_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    s = load_settings()
    assert (s.kafka_auth, s.aws_region, s.instance_id, s.group_instance_id) == (
        "none", None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "effective"), [("stream-wfm-0", "stream-wfm-0"), ("", None), ("a.b_c-1", "a.b_c-1")]
)
def test_instance_id(monkeypatch: pytest.MonkeyPatch, value: str, effective: str | None) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # an explicit value wins
    monkeypatch.setenv("STREAM_WFM_INSTANCE_ID", value)
    assert load_settings().group_instance_id == effective


@pytest.mark.parametrize("value", ["pod 1", "pod/1", "ü", "x" * 250])
def test_invalid_instance_id_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STREAM_WFM_INSTANCE_ID", value)
    with pytest.raises(SettingsError, match=r"^invalid setting STREAM_WFM_INSTANCE_ID: .*'-'"):
        load_settings()
