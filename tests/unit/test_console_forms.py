"""The console's pure parts: form ↔ config dict, sessions, sign-in rate limit."""

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
from stream_wfm.console.ratelimit import SignInLimiter
from stream_wfm.console.sessions import SessionCodec
from stream_wfm.console.urls import account_url, safe_next
from stream_wfm.integrations.exceptions import FieldError
from stream_wfm.integrations.model import validate_config


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
    data, rows_ok = config_data(form, {})
    assert rows_ok
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
    data, _ok = config_data(form, {})
    assert data["max_retries"] == "three"
    assert data["timeout_seconds"] == ""


def test_saved_rows_keep_replace_or_remove_the_stored_value() -> None:
    saved = {"Authorization": "Basic old", "X-Tenant": "t-old", "X-Gone": "g"}
    form = IntegrationForm(
        account_id="1",
        rows=[
            HeaderRow(name="Authorization", saved="Authorization"),
            HeaderRow(name="X-Tenant", value="t-new", saved="X-Tenant"),
            HeaderRow(name="X-Gone", saved="X-Gone", remove=True),
            HeaderRow(),
        ],
    )
    data, rows_ok = config_data(form, saved)
    assert rows_ok
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
    ],
)
def test_rows_that_make_no_sense_are_marked(
    row: HeaderRow, saved: dict[str, str], error: str
) -> None:
    data, rows_ok = config_data(IntegrationForm(account_id="1", rows=[row]), saved)
    assert not rows_ok
    assert row.error == error
    assert data["headers"] == {}


def test_a_name_given_twice_is_marked_on_the_second_row() -> None:
    rows = [HeaderRow(name="X-A", value="1"), HeaderRow(name="X-A", value="2")]
    data, rows_ok = config_data(IntegrationForm(account_id="1", rows=rows), {})
    assert not rows_ok
    assert rows[0].error is None
    assert rows[1].error == "This header name is given more than once."
    assert data["headers"] == {"X-A": "1"}


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
    now[0] += 8 * 3600 + 1
    assert codec.load(codec.dump(fresh)) is None


def test_rate_limit_locks_an_address_out_after_five_failures_in_a_minute() -> None:
    now = [0.0]
    limiter = SignInLimiter(clock=lambda: now[0])
    for _ in range(4):
        limiter.failure("10.0.0.1")
        now[0] += 20.0  # spread over more than a minute: never five within one
    assert limiter.retry_after("10.0.0.1") is None
    for _ in range(5):
        limiter.failure("10.0.0.2")
    assert limiter.retry_after("10.0.0.2") == pytest.approx(60.0)
    assert limiter.retry_after("10.0.0.3") is None
    now[0] += 60.0
    assert limiter.retry_after("10.0.0.2") is None


def test_account_urls_and_next_targets_stay_on_the_console() -> None:
    assert account_url("a/b?c#d", "/delete") == "/accounts/a%2Fb%3Fc%23d/delete"
    assert safe_next("/accounts/1?saved=1") == "/accounts/1?saved=1"
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil", "", None):
        assert safe_next(bad) == "/accounts"
