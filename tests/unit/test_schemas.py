"""The JSON Schemas in schemas/ are valid, describe the fixtures and agree with the code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream_wfm.events import AGENT_LOGIN_FIELDS, AGENT_STATE_FIELDS, CALL_FIELDS
from stream_wfm.integrations.exceptions import ConfigValidationError
from stream_wfm.integrations.model import IntegrationConfig, validate_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(SCHEMAS / f"{name}.schema.json"))


def test_all_five_schemas_exist() -> None:
    assert [path.name for path in SCHEMA_FILES] == [
        "agent-event.schema.json",
        "call-event.schema.json",
        "dlq-record.schema.json",
        "integration-config.schema.json",
        "retry-record.schema.json",
    ]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda path: path.name)
def test_schema_is_a_valid_documented_draft_2020_12_schema(path: Path) -> None:
    schema = load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"]
    assert schema["description"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{path.name}: {name} has no description"


@pytest.mark.parametrize(
    ("fixture", "schema"),
    [
        ("agent_login.json", "agent-event"),
        ("agent_logout.json", "agent-event"),
        ("agent_state_available.json", "agent-event"),
        ("agent_state_custom.json", "agent-event"),
        ("agent_state_on_call.json", "agent-event"),
        ("end_call_inbound.json", "call-event"),
        ("end_call_outbound.json", "call-event"),
        ("integration_json.json", "integration-config"),
        ("integration_urlencoded.json", "integration-config"),
    ],
)
def test_fixture_validates(fixture: str, schema: str) -> None:
    validator(schema).validate(load(FIXTURES / fixture))


def test_event_schemas_document_every_spec_field() -> None:
    agent = set(load(SCHEMAS / "agent-event.schema.json")["properties"])
    call = set(load(SCHEMAS / "call-event.schema.json")["properties"])
    assert agent == {*AGENT_LOGIN_FIELDS, *AGENT_STATE_FIELDS, "event_id"}
    assert call == {*CALL_FIELDS, "event_id"}


@pytest.mark.parametrize(
    ("schema", "event"),
    [
        ("agent-event", {"account_id": "1", "event_type": "LOGIN"}),
        ("agent-event", {"account_id": "", "event_type": "LOGIN", "agent_id": "a"}),
        ("agent-event", {"account_id": 1, "event_type": "LOGIN", "agent_id": "a"}),
        ("call-event", {"account_id": "1", "event_type": "ACD-CALL"}),
        ("call-event", {"account_id": "1", "event_type": "ACD-CALL", "call_id": ""}),
    ],
)
def test_event_schemas_reject_missing_required_fields(schema: str, event: dict[str, Any]) -> None:
    assert not validator(schema).is_valid(event)


def test_event_schemas_allow_extra_fields_and_null_external_agent_id() -> None:
    event = {"account_id": "1", "event_type": "LOGIN", "agent_id": "a", "x-extra": [1],
             "external_agent_id": None}  # fmt: skip
    assert validator("agent-event").is_valid(event)


# --- the config schema mirrors the validator ------------------------------------


def test_config_schema_properties_and_defaults_match_the_model() -> None:
    schema = load(SCHEMAS / "integration-config.schema.json")
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["account_id"]
    assert list(schema["properties"]) == list(IntegrationConfig.model_fields)
    defaults = validate_config({"account_id": "1"})
    for name, prop in schema["properties"].items():
        if name != "account_id":
            assert prop["default"] == getattr(defaults, name), name


SPEC_EXAMPLE = load(FIXTURES / "integration_urlencoded.json")


def whsec(size: int, fill: int = 7) -> str:
    """A signing secret of ``size`` key bytes."""
    return "whsec_" + base64.b64encode(bytes([fill]) * size).decode()


@pytest.mark.parametrize(
    "config",
    [
        SPEC_EXAMPLE,
        {"account_id": "42"},
        {"account_id": "42", "agent_event_url": "", "call_event_url": None},
        {"account_id": "42", "timeout_seconds": 2.5, "max_retries": 0},
        {"account_id": "42", "headers": {"User-Agent": "x", "X-Api-Key": "k\tv"}},
        {"account_id": "42", "signing_secrets": []},
        {"account_id": "42", "signing_secrets": None},
        {"account_id": "42", "signing_secrets": [whsec(24)]},
        {"account_id": "42", "signing_secrets": [whsec(25), whsec(26), whsec(27)]},
        {"account_id": "42", "signing_secrets": [whsec(32), whsec(62), whsec(63)]},
        {"account_id": "42", "signing_secrets": [whsec(64)], "headers": {"Webhook": "x"}},
    ],
)
def test_valid_configs_are_valid_for_both(config: dict[str, Any]) -> None:
    validate_config(config)
    validator("integration-config").validate(config)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_retries": 11},
        {"max_retries": -1},
        {"max_retries": 2.5},
        {"max_retries": "3"},
        {"max_retries": True},
        {"timeout_seconds": 0},
        {"timeout_seconds": 30.5},
        {"timeout_seconds": "10"},
        {"enabled": "yes"},
        {"agent_states": 1},
        {"end_call_events": None},
        {"account_id": ""},
        {"account_id": "a" * 65},
        {"account_id": "has space"},
        {"account_id": 15300002},
        {"agent_event_url": "ftp://wfm.example.com/"},
        {"agent_event_url": "https://wfm.example.com/#frag"},
        {"agent_event_url": "https://user:pw@wfm.example.com/"},
        {"agent_event_url": "https://wfm.example.com/a b"},
        {"call_event_url": 5},
        {"headers": []},
        {"headers": {"Host": "x"}},
        {"headers": {"x-wfm-event-id": "x"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"A": 1}},
        {"headers": {"A": "x\r\ny"}},
        {"headers": {"webhook-signature": "v1,x"}},
        {"headers": {"Webhook-Id": "x"}},
        {"headers": {"WEBHOOK-TIMESTAMP": "1"}},
        {"signing_secrets": whsec(32)},
        {"signing_secrets": {"a": whsec(32)}},
        {"signing_secrets": [whsec(32, n) for n in range(4)]},
        {"signing_secrets": [whsec(32), whsec(32)]},
        {"signing_secrets": [whsec(23)]},
        {"signing_secrets": [whsec(65)]},
        {"signing_secrets": [whsec(66)]},
        {"signing_secrets": [whsec(32).rstrip("=")]},
        {"signing_secrets": [whsec(32).replace("whsec_", "whsk_")]},
        {"signing_secrets": [base64.b64encode(bytes(32)).decode()]},
        {"signing_secrets": [whsec(33).replace("B", "-")]},
        {"signing_secrets": [7]},
        {"unknown_field": True},
    ],
)
def test_configs_rejected_by_the_validator_are_rejected_by_the_schema(
    changes: dict[str, Any],
) -> None:
    config = {**SPEC_EXAMPLE, **changes}
    with pytest.raises(ConfigValidationError):
        validate_config(config)
    assert not validator("integration-config").is_valid(config)


def test_config_without_account_id_is_rejected_by_both() -> None:
    config = {k: v for k, v in SPEC_EXAMPLE.items() if k != "account_id"}
    with pytest.raises(ConfigValidationError):
        validate_config(config)
    assert not validator("integration-config").is_valid(config)


# --- retry and DLQ records: the input record's headers -------------------------------

RECORD_SCHEMAS = ["retry-record", "dlq-record"]


@pytest.mark.parametrize("schema", RECORD_SCHEMAS)
def test_record_schemas_describe_the_input_headers(schema: str) -> None:
    source = load(SCHEMAS / f"{schema}.schema.json")["$defs"]["source_record"]
    assert source["additionalProperties"] is False
    assert "headers" in source["properties"]
    assert "headers" not in source["required"]  # records written before it stay valid
    for name, prop in source["properties"].items():
        assert prop.get("description"), f"{schema}: event.{name} has no description"
    header = source["properties"]["headers"]["items"]
    assert header["additionalProperties"] is False
    assert header["required"] == ["name", "value", "value_encoding"]


def test_both_record_schemas_define_the_headers_alike() -> None:
    retry, dlq = (
        load(SCHEMAS / f"{name}.schema.json")["$defs"]["source_record"]["properties"]["headers"]
        for name in RECORD_SCHEMAS
    )
    assert retry == dlq


HEADER_OK = {"name": "traceparent", "value": "00-ab", "value_encoding": "utf-8"}


@pytest.mark.parametrize("schema", RECORD_SCHEMAS)
@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ([], True),
        ([HEADER_OK], True),
        ([HEADER_OK, {"name": "b", "value": None, "value_encoding": "utf-8"}], True),
        ([{"name": "b", "value": "/w==", "value_encoding": "base64"}], True),
        ({"traceparent": "x"}, False),
        ([{"name": "b", "value": "x"}], False),
        ([{**HEADER_OK, "value_encoding": "hex"}], False),
        ([{**HEADER_OK, "name": None}], False),
        ([{**HEADER_OK, "value": 1}], False),
        ([{**HEADER_OK, "extra": 1}], False),
    ],
)
def test_record_schemas_validate_the_headers(schema: str, headers: Any, valid: bool) -> None:
    event = {
        "topic": "wfm.agent-events", "partition": 0, "offset": 1, "timestamp_ms": None,
        "key": None, "key_encoding": "utf-8", "value": "{}", "value_encoding": "utf-8",
    }  # fmt: skip
    source_schema = load(SCHEMAS / f"{schema}.schema.json")["$defs"]["source_record"]
    source_validator = Draft202012Validator(source_schema)
    assert source_validator.is_valid(event)
    assert source_validator.is_valid({**event, "headers": headers}) is valid
