"""Kafka authentication: the configuration of every client per mode (plain, SASL/PLAIN,
SCRAM and mTLS through the pass-through; Amazon MSK IAM through STREAM_WFM_KAFKA_AUTH), and
the MSK IAM token callback with the signer replaced at its boundary (no AWS, no network)."""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from stream_wfm.errors import SettingsError
from stream_wfm.integrations.writer import ConfigWriter
from stream_wfm.kafka.auth import SIGNER_MODULE, auth_config, msk_iam_oauth_cb
from stream_wfm.kafka.config import (
    common_config,
    group_consumer_config,
    producer_config,
    reader_config,
)
from stream_wfm.settings import MSK_IAM_SIGNER, Settings, load_settings

BUILDERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "group consumer": group_consumer_config,
    "config reader": lambda s: reader_config(s, "stream-wfm-config"),
    "dlq reader": lambda s: reader_config(s, "stream-wfm-dlq"),
    "producer": producer_config,
    "console producer": lambda s: producer_config(s, "stream-wfm-console"),
    "admin": common_config,
}
EXPIRY_MS = 1_900_000_000_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STREAM_WFM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The signer's ``generate_auth_token`` replaced by a stub recording the regions asked
    for; when the ``msk-iam`` extra is not installed, a stand-in package of the same names."""
    try:
        module: Any = importlib.import_module(SIGNER_MODULE)
    except ImportError:
        package: Any = types.ModuleType(MSK_IAM_SIGNER)
        package.__spec__ = importlib.machinery.ModuleSpec(MSK_IAM_SIGNER, None, is_package=True)
        package.__path__ = []
        module = types.ModuleType(SIGNER_MODULE)
        module.__spec__ = importlib.machinery.ModuleSpec(SIGNER_MODULE, None)
        package.MSKAuthTokenProvider = module
        monkeypatch.setitem(sys.modules, MSK_IAM_SIGNER, package)
        monkeypatch.setitem(sys.modules, SIGNER_MODULE, module)
    regions: list[str] = []

    def generate_auth_token(region: str, aws_debug_creds: bool = False) -> tuple[str, int]:
        regions.append(region)
        return f"signed-url-for-{region}", EXPIRY_MS

    monkeypatch.setattr(module, "generate_auth_token", generate_auth_token, raising=False)
    return regions


def all_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    return {name: build(settings) for name, build in BUILDERS.items()}


def env_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


# --- pass-through modes -------------------------------------------------------------------


def test_plaintext_adds_nothing() -> None:
    for conf in all_configs(Settings(bootstrap_servers="kafka:9092")).values():
        assert not {k for k in conf if k.startswith(("security.", "sasl.", "ssl."))}
        assert "oauth_cb" not in conf


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(  # Confluent Cloud: an API key and secret
            {
                "STREAM_WFM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "STREAM_WFM_KAFKA__SASL_MECHANISMS": "PLAIN",
                "STREAM_WFM_KAFKA__SASL_USERNAME": "APIKEY",
                "STREAM_WFM_KAFKA__SASL_PASSWORD": "secret",
            },
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "PLAIN",
                "sasl.username": "APIKEY",
                "sasl.password": "secret",
            },
            id="sasl-plain",
        ),
        pytest.param(  # Amazon MSK with SASL/SCRAM
            {
                "STREAM_WFM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "STREAM_WFM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "STREAM_WFM_KAFKA__SASL_USERNAME": "stream-wfm",
                "STREAM_WFM_KAFKA__SASL_PASSWORD": "secret",
            },
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "stream-wfm",
                "sasl.password": "secret",
            },
            id="scram",
        ),
        pytest.param(  # mutual TLS, certificates mounted from a Secret
            {
                "STREAM_WFM_KAFKA__SECURITY_PROTOCOL": "SSL",
                "STREAM_WFM_KAFKA__SSL_CA_LOCATION": "/etc/kafka/tls/ca.crt",
                "STREAM_WFM_KAFKA__SSL_CERTIFICATE_LOCATION": "/etc/kafka/tls/tls.crt",
                "STREAM_WFM_KAFKA__SSL_KEY_LOCATION": "/etc/kafka/tls/tls.key",
                "STREAM_WFM_KAFKA__SSL_KEY_PASSWORD": "secret",
            },
            {
                "security.protocol": "SSL",
                "ssl.ca.location": "/etc/kafka/tls/ca.crt",
                "ssl.certificate.location": "/etc/kafka/tls/tls.crt",
                "ssl.key.location": "/etc/kafka/tls/tls.key",
                "ssl.key.password": "secret",
            },
            id="mtls",
        ),
    ],
)
def test_pass_through_authentication_reaches_every_client(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: dict[str, str]
) -> None:
    settings = env_settings(monkeypatch, STREAM_WFM_BOOTSTRAP_SERVERS="kafka:9093", **env)
    assert auth_config(settings) == {}
    for name, conf in all_configs(settings).items():
        assert {k: conf.get(k) for k in expected} == expected, name
        assert "oauth_cb" not in conf


# --- Amazon MSK IAM ---------------------------------------------------------------------------


def test_msk_iam_settings(monkeypatch: pytest.MonkeyPatch, signer: list[str]) -> None:
    settings = env_settings(
        monkeypatch, STREAM_WFM_KAFKA_AUTH="msk-iam", STREAM_WFM_AWS_REGION="eu-west-1"
    )
    assert (settings.kafka_auth, settings.aws_region) == ("msk-iam", "eu-west-1")


def test_msk_iam_reaches_every_client(monkeypatch: pytest.MonkeyPatch, signer: list[str]) -> None:
    settings = env_settings(
        monkeypatch,
        STREAM_WFM_BOOTSTRAP_SERVERS="b-1.msk.example:9098",
        STREAM_WFM_KAFKA_AUTH="msk-iam",
        STREAM_WFM_AWS_REGION="eu-west-1",
    )
    for name, conf in all_configs(settings).items():
        assert conf["security.protocol"] == "SASL_SSL", name
        assert conf["sasl.mechanism"] == "OAUTHBEARER", name
        assert conf["oauth_cb"]("") == ("signed-url-for-eu-west-1", EXPIRY_MS / 1000), name
    assert set(signer) == {"eu-west-1"}


def test_the_config_writers_admin_client_gets_the_callback_too(signer: list[str]) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_auth="msk-iam", aws_region="x-1")
    writer = ConfigWriter("t", producer_config(settings))
    try:
        assert writer._admin_config["oauth_cb"]("") == ("signed-url-for-x-1", EXPIRY_MS / 1000)
    finally:
        writer.close()


def test_pass_through_still_wins_over_msk_iam(signer: list[str]) -> None:
    settings = Settings(
        kafka_auth="msk-iam", aws_region="eu-west-1", kafka={"sasl.oauthbearer.config": "x=1"}
    )
    assert producer_config(settings)["sasl.oauthbearer.config"] == "x=1"


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The one-line error of loading the settings with ``env``."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_msk_iam_needs_a_region(monkeypatch: pytest.MonkeyPatch, signer: list[str]) -> None:
    message = settings_error(monkeypatch, STREAM_WFM_KAFKA_AUTH="msk-iam")
    assert message.startswith("invalid setting STREAM_WFM_AWS_REGION:"), message
    assert "STREAM_WFM_KAFKA_AUTH=msk-iam" in message


def test_msk_iam_without_the_extra_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, MSK_IAM_SIGNER, None)  # as if not installed
    message = settings_error(
        monkeypatch, STREAM_WFM_KAFKA_AUTH="msk-iam", STREAM_WFM_AWS_REGION="eu-west-1"
    )
    assert message.startswith("invalid setting STREAM_WFM_KAFKA_AUTH:"), message
    assert "pip install 'stream-wfm[msk-iam]'" in message


def test_unknown_auth_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, STREAM_WFM_KAFKA_AUTH="kerberos")
    assert message.startswith("invalid setting STREAM_WFM_KAFKA_AUTH:"), message


# --- the token callback ---------------------------------------------------------------------


def test_the_callback_returns_the_token_and_its_expiry_in_seconds(signer: list[str]) -> None:
    oauth_cb = msk_iam_oauth_cb("us-east-1")
    assert signer == []  # nothing signed before librdkafka asks
    token, expiry = oauth_cb("sasl.oauthbearer.config value")
    assert (token, expiry) == ("signed-url-for-us-east-1", 1_900_000_000.0)
    assert isinstance(expiry, float)
    oauth_cb("")
    assert signer == ["us-east-1", "us-east-1"]  # a fresh token at each refresh


def test_a_signer_failure_is_logged_and_raised(
    monkeypatch: pytest.MonkeyPatch, signer: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    module = importlib.import_module(SIGNER_MODULE)

    def no_credentials(region: str, aws_debug_creds: bool = False) -> tuple[str, int]:
        raise ValueError("AWS Credentials can not be empty")

    monkeypatch.setattr(module, "generate_auth_token", no_credentials)
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="can not be empty"):
        msk_iam_oauth_cb("eu-west-1")("")
    assert "MSK IAM token not signed: ValueError: AWS Credentials can not be empty" in caplog.text


def test_confluent_kafka_takes_the_callback(signer: list[str]) -> None:
    """A real client: confluent-kafka calls the callback before it returns from creating the
    client and accepts its answer (a wrong shape would fail after 10 s)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka_auth="msk-iam", aws_region="eu-1")
    started = time.monotonic()
    producer = Producer(producer_config(settings))
    try:
        assert signer
        assert set(signer) == {"eu-1"}
        assert time.monotonic() - started < 9  # the token was set, no 10 s timeout
    finally:
        producer.flush(0)
