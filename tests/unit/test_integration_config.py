"""docs/contract.md §3: integration config validation, serialisation and secrecy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.events import EventKind
from stream_wfm.integrations.exceptions import ConfigValidationError, FieldError
from stream_wfm.integrations.model import (
    MASK,
    IntegrationConfig,
    config_to_public_dict,
    config_to_record_value,
    parse_config_record,
    validate_config,
)
from tests import strategies

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECRET = "s3cr3t-HEADER-value-7f1e"

SPEC_EXAMPLE: dict[str, Any] = {
    "account_id": "15300002",
    "enabled": True,
    "agent_event_url": "https://wfm.example.com/ringcx/agent",
    "call_event_url": "https://wfm.example.com/ringcx/call",
    "send_body_as_json": False,
    "agent_states": True,
    "send_all_agent_states": False,
    "agent_login_events": True,
    "agent_logout_events": True,
    "end_call_events": True,
    "headers": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
    "max_retries": 3,
    "timeout_seconds": 10,
}


def with_fields(**fields: Any) -> dict[str, Any]:
    return {"account_id": "15300002", **fields}


def errors_of(data: Any, key: str | None = None) -> list[FieldError]:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(data, key)
    return info.value.field_errors


# --- valid configs -----------------------------------------------------------


def test_spec_example_is_valid_and_kept() -> None:
    cfg = validate_config(SPEC_EXAMPLE, "15300002")
    assert cfg.account_id == "15300002"
    assert cfg.agent_event_url == "https://wfm.example.com/ringcx/agent"
    assert cfg.headers["Authorization"].get_secret_value() == "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
    assert cfg.max_retries == 3
    assert cfg.timeout_seconds == 10


def test_spec_example_fixture_matches_the_spec() -> None:
    assert json.loads((FIXTURES / "integration_urlencoded.json").read_text()) == SPEC_EXAMPLE


def test_json_fixture_is_valid() -> None:
    data = json.loads((FIXTURES / "integration_json.json").read_text())
    cfg = validate_config(data, data["account_id"])
    assert cfg.send_body_as_json is True


def test_defaults_when_only_account_id_is_given() -> None:
    cfg = validate_config({"account_id": "42"})
    assert cfg.enabled is True
    assert cfg.agent_event_url is None
    assert cfg.call_event_url is None
    assert cfg.send_body_as_json is False
    assert (
        cfg.agent_states,
        cfg.send_all_agent_states,
        cfg.agent_login_events,
        cfg.agent_logout_events,
        cfg.end_call_events,
    ) == (False, False, False, False, False)
    assert cfg.headers == {}
    assert cfg.signing_secrets == []
    assert cfg.max_retries == 3
    assert cfg.timeout_seconds == 10


def test_config_is_frozen() -> None:
    cfg = validate_config({"account_id": "42"})
    with pytest.raises(ValueError, match="frozen"):
        cfg.enabled = False  # type: ignore[misc]


@pytest.mark.parametrize("field", ["agent_event_url", "call_event_url"])
def test_empty_url_means_null(field: str) -> None:
    cfg = validate_config(with_fields(**{field: ""}))
    assert getattr(cfg, field) is None


def test_null_url_is_accepted() -> None:
    assert validate_config(with_fields(agent_event_url=None)).agent_event_url is None


@pytest.mark.parametrize(
    "url",
    [
        "https://wfm.example.com/ringcx/agent",
        "http://wfm.example.com",
        "HTTPS://WFM.example.com/Agent",
        "https://wfm.example.com:8443/hook?token=abc&x=1",
        "http://10.0.0.5:8080/hook",
        "http://[2001:db8::1]:8080/hook",
        "https://wfm.example.com/p@th",
        "https://wfm.example.com/hook?",
    ],
)
def test_valid_urls_are_kept_unchanged(url: str) -> None:
    assert validate_config(with_fields(agent_event_url=url)).agent_event_url == url


def test_url_for_kind() -> None:
    cfg = validate_config(SPEC_EXAMPLE)
    assert cfg.url_for(EventKind.AGENT) == SPEC_EXAMPLE["agent_event_url"]
    assert cfg.url_for(EventKind.CALL) == SPEC_EXAMPLE["call_event_url"]


@pytest.mark.parametrize("value", [1, 30, 2.5, 1.0, 30.0])
def test_timeout_accepts_int_or_float_in_range(value: float) -> None:
    assert validate_config(with_fields(timeout_seconds=value)).timeout_seconds == value


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (10, 10), (3.0, 3)])
def test_max_retries_in_range(value: float, expected: int) -> None:
    cfg = validate_config(with_fields(max_retries=value))
    assert cfg.max_retries == expected
    assert type(cfg.max_retries) is int


@pytest.mark.parametrize(
    "name", ["User-Agent", "Content-Type", "Authorization", "X-Api-Key", "x_custom.header~1"]
)
def test_allowed_header_names(name: str) -> None:
    cfg = validate_config(with_fields(headers={name: "v"}))
    assert list(cfg.headers) == [name]


def test_header_value_may_be_empty_or_hold_tabs_and_spaces() -> None:
    cfg = validate_config(with_fields(headers={"A": "", "B": "x\ty z"}))
    assert cfg.headers["B"].get_secret_value() == "x\ty z"


# --- invalid configs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "account_id", "is required"),
        (with_fields(account_id=""), "account_id", "must not be empty"),
        (with_fields(account_id="a" * 65), "account_id", "at most 64"),
        (with_fields(account_id="15 30"), "account_id", "whitespace"),
        (with_fields(account_id="15\n30"), "account_id", "whitespace"),
        (with_fields(account_id=15300002), "account_id", "must be a string"),
        (with_fields(enabled="true"), "enabled", "true or false"),
        (with_fields(agent_states=1), "agent_states", "true or false"),
        (with_fields(send_body_as_json=None), "send_body_as_json", "true or false"),
        (
            with_fields(agent_event_url="ftp://wfm.example.com/x"),
            "agent_event_url",
            "http or https",
        ),
        (with_fields(agent_event_url="wfm.example.com/x"), "agent_event_url", "http or https"),
        (with_fields(agent_event_url="/relative"), "agent_event_url", "http or https"),
        (with_fields(agent_event_url="https://"), "agent_event_url", "http or https"),
        (with_fields(agent_event_url="https://[::1/x"), "agent_event_url", "http or https"),
        (with_fields(call_event_url="https://h.example/a b"), "call_event_url", "spaces"),
        (with_fields(call_event_url=" https://h.example/"), "call_event_url", "spaces"),
        (with_fields(call_event_url="https://h.example/\r\nX: y"), "call_event_url", "control"),
        (with_fields(call_event_url="https://h.example/#top"), "call_event_url", "fragment"),
        (with_fields(call_event_url="https://u:p@h.example/"), "call_event_url", "password"),
        (with_fields(call_event_url="https://h.example:99999/"), "call_event_url", "port"),
        (with_fields(call_event_url="https://h.example:0/"), "call_event_url", "port"),
        (
            with_fields(call_event_url=f"https://{'a' * 64}.example/"),
            "call_event_url",
            "invalid host name",
        ),
        (with_fields(call_event_url="https://a..example/"), "call_event_url", "invalid host name"),
        (with_fields(call_event_url="https://h.example/" + "a" * 2048), "call_event_url", "2048"),
        (with_fields(call_event_url=5), "call_event_url", "string or null"),
        (with_fields(max_retries=11), "max_retries", "from 0 to 10"),
        (with_fields(max_retries=-1), "max_retries", "from 0 to 10"),
        (with_fields(max_retries=2.5), "max_retries", "from 0 to 10"),
        (with_fields(max_retries="3"), "max_retries", "from 0 to 10"),
        (with_fields(max_retries=True), "max_retries", "from 0 to 10"),
        (with_fields(timeout_seconds=0), "timeout_seconds", "from 1 to 30"),
        (with_fields(timeout_seconds=0.5), "timeout_seconds", "from 1 to 30"),
        (with_fields(timeout_seconds=31), "timeout_seconds", "from 1 to 30"),
        (with_fields(timeout_seconds="10"), "timeout_seconds", "from 1 to 30"),
        (with_fields(timeout_seconds=float("nan")), "timeout_seconds", "from 1 to 30"),
        (with_fields(timeout_seconds=float("inf")), "timeout_seconds", "from 1 to 30"),
        (with_fields(headers=["Authorization"]), "headers", "must be an object"),
        (
            with_fields(headers={"Bad Name": "v"}),
            "headers",
            "'Bad Name' is not a valid header name",
        ),
        (with_fields(headers={"": "v"}), "headers", "is not a valid header name"),
        (with_fields(headers={"X-A\r\n": "v"}), "headers", "is not a valid header name"),
        (with_fields(headers={"Ünicode": "v"}), "headers", "is not a valid header name"),
        (with_fields(headers={"A": 1}), "headers", "the value of 'A' must be a string"),
        (with_fields(headers={"A": None}), "headers", "the value of 'A' must be a string"),
        (with_fields(headers={"A": "x\r\ny"}), "headers", "no CR, LF"),
        (with_fields(headers={"A": "x\ny"}), "headers", "no CR, LF"),
        (with_fields(headers={"A": "x\x00y"}), "headers", "no CR, LF"),
        (with_fields(headers={"A": "café"}), "headers", "printable ASCII"),
        (with_fields(headers={"A": "x" * 8193}), "headers", "longer than 8192"),
        (with_fields(headers={"A" * 257: "v"}), "headers", "longer than 256"),
        (with_fields(headers={"X-A": "1", "x-a": "2"}), "headers", "more than once"),
        (with_fields(headers={f"H{i}": "v" for i in range(51)}), "headers", "at most 50"),
        (with_fields(colour="blue"), "", "unknown field 'colour'"),
    ],
)
def test_invalid_config(data: dict[str, Any], field: str, message: str) -> None:
    errors = errors_of(data)
    assert any(e.field == field and message in e.message for e in errors), errors


@pytest.mark.parametrize(
    "name", ["Host", "host", "Content-Length", "CONTENT-LENGTH", "Transfer-Encoding",
             "Connection", "connection", "X-WFM-Event-Id", "x-wfm-event-id",
             "webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE"],
)  # fmt: skip
def test_forbidden_header_names(name: str) -> None:
    errors = errors_of(with_fields(headers={name: "v"}))
    assert errors == [FieldError("headers", f"{name!r} cannot be set")]


@pytest.mark.parametrize("data", [None, [], "config", 3, True])
def test_config_must_be_an_object(data: Any) -> None:
    assert errors_of(data) == [FieldError("", "the config must be a JSON object")]


def test_account_id_must_match_the_key() -> None:
    errors = errors_of(with_fields(account_id="15300002"), key="15300003")
    assert errors == [FieldError("account_id", "does not match the record key '15300003'")]
    assert validate_config(with_fields(account_id="15300003"), key="15300003")


def test_all_problems_are_reported_in_one_line() -> None:
    data = with_fields(
        agent_event_url="ftp://x", headers={"Bad Name": "v", "Host": "h"}, max_retries=99
    )
    with pytest.raises(ConfigValidationError) as info:
        validate_config(data)
    text = str(info.value)
    assert text == (
        "invalid integration config: agent_event_url: must be an absolute http or https URL; "
        "headers: 'Bad Name' is not a valid header name; headers: 'Host' cannot be set; "
        "max_retries: must be an integer from 0 to 10"
    )
    assert "\n" not in text
    assert info.value.by_field()["headers"] == [
        "'Bad Name' is not a valid header name",
        "'Host' cannot be set",
    ]
    assert info.value.retriable is False


# --- records -----------------------------------------------------------------


def test_record_value_round_trips_with_header_values() -> None:
    cfg = validate_config(SPEC_EXAMPLE)
    value = config_to_record_value(cfg)
    assert orjson.loads(value)["headers"] == SPEC_EXAMPLE["headers"]
    assert parse_config_record(b"15300002", value) == cfg
    assert list(orjson.loads(value)) == list(IntegrationConfig.model_fields)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, orjson.dumps(SPEC_EXAMPLE), "the record has no key"),
        (b"\xff15300002", orjson.dumps(SPEC_EXAMPLE), "not UTF-8"),
        (b"15300002", b"{not json", "not valid JSON"),
        (b"15300002", b"", "not valid JSON"),
        (b"15300002", b'{"account_id": "15300002", "max_retries": NaN}', "not valid JSON"),
        (b"15300002", b"[]", "must be a JSON object"),
        (b"15300009", orjson.dumps(SPEC_EXAMPLE), "does not match the record key"),
    ],
)
def test_invalid_records(key: bytes | None, value: bytes, message: str) -> None:
    with pytest.raises(ConfigValidationError, match=message):
        parse_config_record(key, value)


# --- secrets -----------------------------------------------------------------


def test_header_value_is_not_in_repr_or_str() -> None:
    cfg = validate_config(with_fields(headers={"Authorization": SECRET}))
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg)
    assert SECRET not in repr(cfg.model_dump())


def test_public_dict_masks_header_values_unless_asked() -> None:
    cfg = validate_config(with_fields(headers={"Authorization": SECRET, "X-Key": "k"}))
    public = config_to_public_dict(cfg)
    assert public["headers"] == {"Authorization": MASK, "X-Key": MASK}
    assert SECRET not in repr(public)
    assert public["account_id"] == "15300002"
    assert config_to_public_dict(cfg, show_secrets=True)["headers"]["Authorization"] == SECRET


@pytest.mark.parametrize(
    "headers",
    [
        {"Bad Name": SECRET},
        {"Host": SECRET},
        {"A": SECRET + "\r\n"},
        {"A": SECRET + "é"},
        {"A": SECRET * 1000},
        {"X-A": SECRET, "x-a": SECRET},
    ],
)
def test_header_value_never_appears_in_validation_errors(headers: dict[str, str]) -> None:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(with_fields(headers=headers, max_retries=SECRET))
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.field_errors)


# --- properties --------------------------------------------------------------

json_values = strategies.json_values(3, 10)
field_names = st.sampled_from([*IntegrationConfig.model_fields, "other"])
config_like = st.dictionaries(field_names, json_values, max_size=8)


def _validate_or_error(data: Any) -> IntegrationConfig | None:
    errors: list[FieldError] = []
    try:
        return validate_config(data, "15300002")
    except ConfigValidationError as exc:
        errors = exc.field_errors
    assert errors
    return None


@given(json_values)
def test_arbitrary_json_validates_or_raises_config_error(data: Any) -> None:
    _validate_or_error(data)


@given(config_like)
def test_config_shaped_json_validates_or_raises_config_error(data: dict[str, Any]) -> None:
    cfg = _validate_or_error(data)
    if cfg is not None:
        assert parse_config_record(b"15300002", config_to_record_value(cfg)) == cfg


def validation_message(data: dict[str, Any]) -> str:
    """The text of the error validating ``data`` raises; empty when it is valid."""
    try:
        validate_config(data)
    except ConfigValidationError as exc:
        return str(exc)
    return ""


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4), json_values)
def test_header_values_never_leak_into_errors(headers: dict[str, str], bad: Any) -> None:
    marked = {name: f"{SECRET}{value}" for name, value in headers.items()}
    data = with_fields(headers=marked, max_retries=bad, agent_event_url=bad)
    assert SECRET not in validation_message(data)


@given(st.lists(st.text(max_size=40), max_size=5), json_values)
def test_signing_secrets_never_leak_into_errors(texts: list[str], bad: Any) -> None:
    marked = [f"whsec_{SECRET}{text}" for text in texts]
    data = with_fields(signing_secrets=[*marked, bad], max_retries=bad)
    assert SECRET not in validation_message(data)


# --- review finding 11: duplicate keys, invisible characters, huge numbers ----------

DUPLICATE_RECORDS = [
    (
        b'{"account_id": "1", "headers": {"Authorization": "Basic YQ==", '
        b'"Authorization": "Basic Yg=="}}',
        [FieldError("headers", "duplicate JSON key headers.Authorization")],
    ),
    (
        b'{"account_id": "1", "agent_event_url": "https://a.example/", '
        b'"agent_event_url": "https://b.example/"}',
        [FieldError("agent_event_url", "duplicate JSON key agent_event_url")],
    ),
    (
        b'{"account_id": "1", "account_id": "1"}',
        [FieldError("account_id", "duplicate JSON key account_id")],
    ),
    (  # the same key once escaped: still the same key
        b'{"account_id": "1", "\\u0061ccount_id": "1"}',
        [FieldError("account_id", "duplicate JSON key account_id")],
    ),
    (
        b'{"account_id": "1", "headers": {"X.Y": "a", "X.Y": "b", "Z": "c", "Z": "d"}}',
        [
            FieldError("headers", 'duplicate JSON key headers["X.Y"]'),
            FieldError("headers", "duplicate JSON key headers.Z"),
        ],
    ),
]


@pytest.mark.parametrize(("value", "expected"), DUPLICATE_RECORDS)
def test_a_record_with_a_duplicate_key_is_refused_naming_the_key_path(
    value: bytes, expected: list[FieldError]
) -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert info.value.field_errors == expected
    assert "Basic" not in str(info.value)  # the duplicated values are secrets


def test_duplicate_keys_at_any_depth_are_reported_with_the_other_problems() -> None:
    value = b'{"account_id": "1", "x": [{"a": 1}, {"a": {"b": 1, "b": 2}, "a": 3}]}'
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert info.value.field_errors == [
        FieldError("", "duplicate JSON key x[1].a"),
        FieldError("", "unknown field 'x'"),
    ]


def test_a_duplicate_key_path_shows_invisible_characters_escaped() -> None:
    value = '{"account_id": "1", "x\u202e": {"k": 1, "k": 2}}'.encode()
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert FieldError("", 'duplicate JSON key ["x\\u202e"].k') in info.value.field_errors
    assert "\u202e" not in str(info.value)


def test_header_names_differing_only_in_case_are_duplicates() -> None:
    value = b'{"account_id": "1", "headers": {"Authorization": "a", "authorization": "b"}}'
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert info.value.field_errors == [
        FieldError("headers", "'authorization' is given more than once (names ignore case)")
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": 'a":b', "X-B": '":', "X-C": 'x" : y'},  # key-like text inside values
        {"X-A": "v"},
    ],
)
def test_strings_that_look_like_keys_are_not_duplicates(headers: dict[str, str]) -> None:
    value = orjson.dumps(with_fields(headers=headers, agent_event_url='https://h.example/"x":'))
    cfg = parse_config_record(b"15300002", value)
    assert {k: v.get_secret_value() for k, v in cfg.headers.items()} == headers


def test_a_deeply_nested_record_is_refused_not_crashed() -> None:
    # orjson decodes up to 1024 levels, Python's json module fewer (RecursionError).
    deep = b'{"account_id": "1", "x": ' + b"[" * 1000 + b'{"a": 1, "a": 2}' + b"]" * 1000 + b"}"
    with pytest.raises(ConfigValidationError):
        parse_config_record(b"1", deep)


@given(json_values, st.data())
def test_a_repeated_key_anywhere_is_found(inner: Any, data: st.DataObject) -> None:
    key = data.draw(st.text(max_size=5))
    text = orjson.dumps({key: inner})
    doubled = b"{" + text[1:-1] + b"," + text[1:-1] + b"}"
    nested = b'{"account_id": "1", "headers": [0, ' + doubled + b"]}"
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", nested)
    assert any(
        e.message.startswith("duplicate JSON key headers[1]") for e in info.value.field_errors
    )


@given(json_values)
def test_orjson_output_never_has_duplicate_keys(data: Any) -> None:
    value = orjson.dumps(with_fields(x=data))
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"15300002", value)
    assert info.value.field_errors == [FieldError("", "unknown field 'x'")]


INVISIBLE = [
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d",
    "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff", "\u00ad", "\u061c", "\u2060",
    "\U000e0001", "\u2028", "\u2029", "\x85", "\x7f", "\x00", "\t", "\u00a0", "\u3000",
    "\ud800", "\ue000", "\U0010fffd",
]  # fmt: skip


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("where", ["inside", "start", "end"])
def test_account_id_refuses_invisible_format_and_separator_characters(
    char: str, where: str
) -> None:
    account_id = {"inside": f"153{char}00002", "start": f"{char}15300002"}.get(
        where, f"15300002{char}"
    )
    errors = errors_of(with_fields(account_id=account_id))
    assert [e.field for e in errors] == ["account_id"]
    assert "whitespace" in errors[0].message
    assert char not in str(errors[0])


@pytest.mark.parametrize("account_id", [" 15300002", "15300002 ", "1 2"])
def test_account_id_refuses_spaces(account_id: str) -> None:
    assert [e.field for e in errors_of(with_fields(account_id=account_id))] == ["account_id"]


@pytest.mark.parametrize(
    "account_id", ["15300002", "acct-1", "a:b/c.d_e", "ünïcødé", "日本-42", "x" * 64]
)
def test_printable_account_ids_are_kept(account_id: str) -> None:
    assert validate_config(with_fields(account_id=account_id)).account_id == account_id


@pytest.mark.parametrize("value", ["x\x7fy", "a\u200bb", "\u202eabc", "x\x0by", "x\u2028y"])
def test_header_values_refuse_control_and_format_characters(value: str) -> None:
    errors = errors_of(with_fields(headers={"X-A": value}))
    assert errors == [
        FieldError(
            "headers",
            "the value of 'X-A' must be printable ASCII (no CR, LF or other control characters)",
        )
    ]


HUGE = 10**5000  # more digits than int() parses from a string (4300)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_retries", HUGE, "must be an integer from 0 to 10"),
        ("max_retries", -HUGE, "must be an integer from 0 to 10"),
        ("max_retries", "9" * 5000, "must be an integer from 0 to 10"),
        ("max_retries", "\u0663", "must be an integer from 0 to 10"),  # Arabic-Indic 3
        ("max_retries", "\uff13", "must be an integer from 0 to 10"),  # fullwidth 3
        ("max_retries", 1e308, "must be an integer from 0 to 10"),
        ("timeout_seconds", HUGE, "must be a number from 1 to 30"),
        ("timeout_seconds", -HUGE, "must be a number from 1 to 30"),
        ("timeout_seconds", "\u0661\u0660", "must be a number from 1 to 30"),
        ("timeout_seconds", "9" * 5000, "must be a number from 1 to 30"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else type(v).__name__,
)
def test_huge_and_non_ascii_numbers_are_field_errors(field: str, value: Any, message: str) -> None:
    assert errors_of(with_fields(**{field: value})) == [FieldError(field, message)]


@pytest.mark.parametrize(
    ("field", "number", "message"),
    [
        ("max_retries", b"9" * 5000, "must be an integer from 0 to 10"),
        ("max_retries", b"-" + b"9" * 5000, "must be an integer from 0 to 10"),
        ("max_retries", b"1e400", "must be an integer from 0 to 10"),
        ("max_retries", b"1" + b"0" * 400 + b".5", "must be an integer from 0 to 10"),
        ("timeout_seconds", b"9" * 5000, "must be a number from 1 to 30"),
        ("timeout_seconds", b"-1e400", "must be a number from 1 to 30"),
    ],
    ids=lambda v: v.decode()[:12] if isinstance(v, bytes) else v,
)
def test_a_record_number_beyond_a_double_is_a_field_error(
    field: str, number: bytes, message: str
) -> None:
    value = b'{"account_id": "1", "' + field.encode() + b'": ' + number + b"}"
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert info.value.field_errors == [FieldError(field, message)]


@pytest.mark.parametrize(
    "value",
    [
        b'{"account_id": "1", "max_retries": ' + b"9" * 5000 + b', "x": "\\ud800"}',
        b'{"account_id": "1", "max_retries": ' + b"9" * 5000 + b", NaN: 1}",
        b'{"account_id": "1", "max_retries": ' + b"9" * 5000,
        b'{"account_id": "1", "agent_event_url": "https://h.example/\\ud800"}',
        b"[" * 5000 + b"9" * 5000 + b"]" * 5000,
    ],
    ids=["lone-surrogate", "nan", "truncated", "surrogate-only", "deep"],
)
def test_records_json_refuses_are_still_not_json(value: bytes) -> None:
    with pytest.raises(ConfigValidationError) as info:
        parse_config_record(b"1", value)
    assert info.value.field_errors == [FieldError("", "the record value is not valid JSON")]


# Arbitrary JSON-like input, wider than orjson's: integers of any size (beyond int()'s
# 4300-digit limit too), NaN and infinities, numeric strings in any script, surrogates.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
wide_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(4290, 4310).map(lambda n: 10**n - 1)
    | st.integers(4290, 4310).map(lambda n: -(10**n))
    | st.floats()
    | st.text(st.characters(categories=["Nd"]), min_size=1, max_size=6)
    | any_text
)
wide_values = st.recursive(
    wide_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=10,
)
wide_configs = st.dictionaries(field_names, wide_values, max_size=8).map(
    lambda d: {"account_id": "15300002", **d}
)


@given(wide_values | wide_configs)
def test_wide_json_like_input_validates_or_raises_config_error(data: Any) -> None:
    _validate_or_error(data)


# JSON-ish text: config fragments, numbers beyond a double, NaN, lone surrogates, nesting.
json_tokens = st.sampled_from([
    b"{", b"}", b"[", b"]", b",", b":", b'"account_id"', b'"15300002"', b'"max_retries"',
    b'"timeout_seconds"', b'"headers"', b'"A"', b'"a"', b"3", b"-0.5", b"9" * 5000,
    b"-" + b"9" * 400, b"1e400", b"NaN", b'"\\ud800"', b'"\\u0661"', b"true", b"null",
    b'"\\"":', b" ",
])  # fmt: skip
record_like = st.lists(json_tokens, max_size=30).map(b"".join)
numbered_config = st.tuples(
    st.sampled_from(["max_retries", "timeout_seconds", "account_id", "headers", "x"]),
    st.sampled_from([b"9" * 5000, b"1e400", b"-1e999", b'"\\u0663"', b'{"a": 1e400}']),
).map(lambda fv: b'{"account_id": "15300002", "' + fv[0].encode() + b'": ' + fv[1] + b"}")


@given(st.binary(max_size=300) | record_like | numbered_config)
def test_arbitrary_record_bytes_parse_or_raise_config_error(value: bytes) -> None:
    errors: list[FieldError] = []
    try:
        parse_config_record(b"15300002", value)
    except ConfigValidationError as exc:
        errors = exc.field_errors
    assert errors or orjson.loads(value) is not None
