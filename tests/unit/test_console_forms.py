"""The console's pure parts: form ↔ config dict, saved header values, strict numbers,
sessions, URLs."""

from __future__ import annotations

import pytest
from multidict import MultiDict, MultiDictProxy

from stream_wfm.console.forms import (
    HeaderRow,
    IntegrationForm,
    config_data,
    errors_by_control,
    form_from_config,
    form_from_post,
)
from stream_wfm.console.inputs import strict_int
from stream_wfm.console.saved import SavedSecrets, origin_of
from stream_wfm.console.sessions import SessionCodec
from stream_wfm.console.urls import account_url, safe_next
from stream_wfm.integrations.exceptions import FieldError
from stream_wfm.integrations.model import IntegrationConfig, validate_config


def _post(**fields: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(fields))


def test_posted_form_becomes_the_config_dict() -> None:
    post = _post(
        agent_event_url=" https://wfm.example.com/a ",
        send_body_as_json="on",
        agent_login_events="on",
        max_retries="5",
        timeout_seconds="2.5",
        header_name_0="Authorization",
        header_value_0="Basic abc",
    )
    form = form_from_post(post, "15300002")
    data, problems = config_data(form, None)
    assert problems == []
    assert data == {
        "account_id": "15300002",
        "agent_event_url": "https://wfm.example.com/a",
        "call_event_url": "",
        "send_body_as_json": True,
        "agent_states": False,
        "send_all_agent_states": False,
        "agent_login_events": True,
        "agent_logout_events": False,
        "end_call_events": False,
        "enabled": False,
        "headers": {"Authorization": "Basic abc"},
        "max_retries": 5,
        "timeout_seconds": 2.5,
    }
    config = validate_config(data, "15300002")
    assert config.call_event_url is None


def test_numbers_that_are_not_numbers_reach_the_validator_as_text() -> None:
    form = form_from_post(_post(max_retries="three", timeout_seconds=""), "1")
    data, _problems = config_data(form, None)
    assert data["max_retries"] == "three"
    assert data["timeout_seconds"] == ""


def _saved(headers: dict[str, str], **urls: str) -> IntegrationConfig:
    return validate_config(
        {
            "account_id": "1",
            "agent_event_url": "https://wfm.example.com/a",
            **urls,
            "headers": headers,
        }
    )


def _form_of(rows: list[HeaderRow], **urls: str) -> IntegrationForm:
    return IntegrationForm(
        account_id="1",
        rows=rows,
        agent_event_url=urls.get("agent_event_url", "https://wfm.example.com/a"),
        call_event_url=urls.get("call_event_url", ""),
    )


def test_saved_rows_keep_replace_or_remove_the_stored_value() -> None:
    saved = _saved({"Authorization": "Basic old", "X-Tenant": "t-old", "X-Gone": "g"})
    form = _form_of(
        [
            HeaderRow(name="Authorization", saved="Authorization"),
            HeaderRow(name="X-Tenant", value="t-new", saved="X-Tenant"),
            HeaderRow(name="X-Gone", saved="X-Gone", remove=True),
            HeaderRow(),
        ]
    )
    data, problems = config_data(form, saved)
    assert problems == []
    assert data["headers"] == {"Authorization": "Basic old", "X-Tenant": "t-new"}


@pytest.mark.parametrize(
    ("row", "saved", "error"),
    [
        (HeaderRow(name="X-New"), {}, "Enter a header value."),
        (HeaderRow(value="v"), {}, "Enter a header name, or tick Remove."),
        (
            HeaderRow(name="X-A", saved="X-A"),
            {},
            "This header is no longer saved; enter its value again.",
        ),
        (
            HeaderRow(name="X-Leak", saved="Authorization"),
            {"Authorization": "Basic old"},
            "Type a value for this header: a saved value stays with the name it was saved under.",
        ),
        (
            HeaderRow(name="authorization", saved="Authorization"),
            {"Authorization": "Basic old"},
            "Type a value for this header: a saved value stays with the name it was saved under.",
        ),
    ],
)
def test_rows_that_make_no_sense_are_marked(
    row: HeaderRow, saved: dict[str, str], error: str
) -> None:
    data, problems = config_data(_form_of([row]), _saved(saved))
    assert [p.field for p in problems] == ["headers"]
    assert row.error == error
    assert data["headers"] == {}


def test_the_saved_config_decides_which_value_a_row_keeps() -> None:
    saved = _saved({"Authorization": "Basic old", "X-Tenant": "t-old"})
    rows = [HeaderRow(name="X-Tenant", saved="Authorization")]
    data, problems = config_data(_form_of(rows), saved)
    assert problems == []
    assert data["headers"] == {"X-Tenant": "t-old"}


@pytest.mark.parametrize(
    ("urls", "moved"),
    [
        ({"agent_event_url": "https://wfm.example.com/b?x=1"}, False),
        ({"agent_event_url": "https://WFM.Example.com:443/a"}, False),
        ({"call_event_url": "https://calls.example.com/c"}, False),
        ({"agent_event_url": "", "call_event_url": ""}, False),
        ({"agent_event_url": "https://wfm.example.com.evil.example/a"}, True),
        ({"agent_event_url": "http://wfm.example.com/a"}, True),
        ({"agent_event_url": "https://wfm.example.com:8443/a"}, True),
        ({"call_event_url": "https://evil.example/c"}, True),
        ({"agent_event_url": "not a url"}, True),
    ],
)
def test_a_saved_value_never_follows_a_url_to_another_origin(
    urls: dict[str, str], moved: bool
) -> None:
    saved = _saved({"Authorization": "Basic old"}, call_event_url="https://calls.example.com/c")
    rows = [HeaderRow(name="Authorization", saved="Authorization"), HeaderRow("X-New", "typed")]
    fields = {"call_event_url": "https://calls.example.com/c", **urls}
    data, problems = config_data(_form_of(rows, **fields), saved)
    if moved:
        assert data["headers"] == {"X-New": "typed"}
        assert rows[0].error is not None
        assert rows[0].error.startswith("Type this value again: a URL now goes to another site")
        assert rows[1].error is None
        assert [p.field for p in problems] == ["headers"]
    else:
        assert data["headers"] == {"Authorization": "Basic old", "X-New": "typed"}
        assert problems == []


def test_origins_are_normalised() -> None:
    assert origin_of("https://WFM.example.com/a") == "https://wfm.example.com:443"
    assert origin_of("http://wfm.example.com:80/a") == "http://wfm.example.com:80"
    assert origin_of("https://[2001:DB8::0001]:8443/") == "https://[2001:db8::1]:8443"
    assert origin_of("https://user@[::1]:80/") == "https://[::1]:80"
    # A non-ASCII name is compared as written: its ASCII form depends on the IDNA variant.
    assert origin_of("https://faß.example/") == "https://faß.example:443"
    assert origin_of("https://faß.example/") != origin_of("https://fass.example/")
    assert origin_of("https://FAß.example/") != origin_of("https://faß.example/")
    assert origin_of("https://bücher.example/") != origin_of("https://xn--bcher-kva.example/")
    for bad in ("ftp://wfm.example.com/", "https://", "https://h:99999/", "not a url"):
        assert origin_of(bad) is None


def test_saved_secrets_of_a_config() -> None:
    saved = SavedSecrets.of(_saved({"Authorization": "Basic old"}))
    assert saved.value("Authorization") == "Basic old"
    assert saved.value("authorization") is None
    assert saved.may_go_to(["https://wfm.example.com/z"])
    assert not saved.may_go_to(["https://other.example/z"])
    assert SavedSecrets.of(None).value("Authorization") is None


def test_the_form_of_a_saved_config_never_holds_header_values() -> None:
    config = validate_config(
        {"account_id": "1", "headers": {"Authorization": "Basic c2VjcmV0"}, "timeout_seconds": 10}
    )
    form = form_from_config(config)
    assert [(r.name, r.value, r.saved) for r in form.rows] == [
        ("Authorization", "", "Authorization")
    ]
    assert form.timeout_seconds == "10"
    assert form.flags["enabled"] is True


def test_errors_are_sentences_keyed_by_their_control() -> None:
    errors = [
        FieldError("agent_event_url", "must be an absolute http or https URL"),
        FieldError("account_id", "does not match the record key '2'"),
        FieldError("", "unknown field 'x'"),
        FieldError("headers", "'Bad Name' is not a valid header name"),
    ]
    grouped = errors_by_control(errors, frozenset({"agent_event_url", "headers"}))
    assert grouped == {
        "agent_event_url": ["Agent Event URL must be an absolute http or https URL."],
        "": ["Account ID does not match the record key '2'.", "Unknown field 'x'."],
        "headers": ["'Bad Name' is not a valid header name."],
    }


def test_sessions_are_signed_expire_and_can_be_revoked() -> None:
    now = [1000.0]
    codec = SessionCodec(b"k" * 32, clock=lambda: now[0])
    session = codec.signed_in("admin")
    cookie = codec.dump(session)
    assert codec.load(cookie) == session
    assert SessionCodec(b"x" * 32, clock=lambda: now[0]).load(cookie) is None
    payload, signature = cookie.split(".")
    assert codec.load(f"{payload}A.{signature}") is None
    assert codec.csrf_ok(session, codec.csrf_token(session))
    assert not codec.csrf_ok(codec.anonymous(), codec.csrf_token(session))
    codec.revoke(session)
    assert codec.load(cookie) is None
    fresh = codec.signed_in("admin")
    now[0] += 12 * 3600
    assert codec.load(codec.dump(fresh)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("10", 10),
        ("-3", -3),
        ("007", 7),
        ("1" * 18, int("1" * 18)),
        ("1" * 19, None),  # longer than allowed
        ("9" * 5000, None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE
        ("\u00b2", None),  # SUPERSCRIPT TWO: str.isdigit() says yes
        ("\uff11", None),  # FULLWIDTH DIGIT ONE
        ("1_000", None),
        (" 1", None),
        ("+1", None),
        ("", None),
        ("-", None),
    ],
)
def test_strict_int_takes_short_ascii_digits_only(text: str, expected: int | None) -> None:
    assert strict_int(text, max_digits=18) == expected


def test_account_urls_and_next_targets_stay_on_the_console() -> None:
    assert account_url("a/b?c#d", "/delete") == "/accounts/a%2Fb%3Fc%23d/delete"
    assert safe_next("/accounts/1?saved=1") == "/accounts/1?saved=1"
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil", "", None):
        assert safe_next(bad) == "/accounts"
