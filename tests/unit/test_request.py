"""docs/contract.md §5: the webhook request built for an event."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm import __version__
from stream_wfm.delivery.exceptions import UnformattableEventError
from stream_wfm.delivery.form import form_quote, query_value
from stream_wfm.delivery.request import (
    DEFAULT_USER_AGENT,
    RequestTemplate,
    WebhookRequest,
    compile_template,
    host_key_of,
    trace_context,
)
from stream_wfm.events import (
    AGENT_LOGIN_FIELDS,
    AGENT_STATE_FIELDS,
    CALL_FIELDS,
    Event,
    EventKind,
    decode_event,
)
from stream_wfm.integrations.model import IntegrationConfig, validate_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AGENT_URL = "https://wfm.example.com/ringcx/agent"
CALL_URL = "https://wfm.example.com/ringcx/call"
UA = "stream-wfm/test"


def fixture_event(name: str) -> Event:
    kind = EventKind.CALL if name.startswith("end_call") else EventKind.AGENT
    return decode_event((FIXTURES / name).read_bytes(), kind, "t:0:1")


def config(**fields: Any) -> IntegrationConfig:
    base: dict[str, Any] = {
        "account_id": "15300002",
        "agent_event_url": AGENT_URL,
        "call_event_url": CALL_URL,
        "headers": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
    }
    return validate_config({**base, **fields})


def template(kind: EventKind = EventKind.AGENT, **fields: Any) -> RequestTemplate:
    compiled = compile_template(config(**fields), kind, UA)
    assert compiled is not None
    return compiled


def build(name: str, **fields: Any) -> WebhookRequest:
    event = fixture_event(name)
    return template(event.kind, **fields).build(event)


def make_event(data: dict[str, Any], kind: EventKind = EventKind.AGENT) -> Event:
    return Event(kind, "1", str(data.get("event_type", "AVAILABLE")), "a", "c", "e-1", data, "1:a")


# --- JSON bodies, byte for byte ---------------------------------------------------

JSON_BODIES = {
    "agent_login.json": (
        b'{"external_agent_id":"EXT-20417","duration":"0","agent_login_id":"88201345",'
        b'"account_id":"15300002","event_type":"LOGIN","agent_id":"1204571",'
        b'"date_time":"2026-11-25 09:00:00","agent_phone":"5551230100",'
        b'"username":"jane.doe@example.com","source_ip":"203.0.113.24"}'
    ),
    "agent_logout.json": (
        b'{"external_agent_id":null,"duration":"30600","agent_login_id":"88201345",'
        b'"account_id":"15300002","event_type":"LOGOUT","agent_id":"1204571",'
        b'"date_time":"2026-11-25 17:30:00","agent_phone":"5551230100",'
        b'"username":"jane.doe@example.com","source_ip":"203.0.113.24"}'
    ),
    "agent_state_on_call.json": (
        b'{"agent_id":"1204571","prev_state":"AVAILABLE","prev_aux_state":"",'
        b'"agent_phone":"5551230100","source_ip":"203.0.113.24","external_agent_id":"EXT-20417",'
        b'"duration":"214","agent_login_id":"88201345","account_id":"15300002",'
        b'"event_type":"ENGAGED","event_aux_type":"","date_time":"2026-11-25 09:03:46",'
        b'"pending_disp":"false","username":"jane.doe@example.com","call_id":"640183527119",'
        b'"call_source_id":"71045","call_source_name":"Billing Support","dnis":"8005550199",'
        b'"call_type":"INBOUND"}'
    ),
    "end_call_outbound.json": (
        b'{"recording_url":"","queue_duration":"0","agent_disposition":"",'
        b'"gate_name":"Renewals Q4","call_state":"NO ANSWER","call_duration":"28",'
        b'"call_id":"640183530482","account_id":"15300002","event_type":"VPD-CALL",'
        b'"gate_id":"90312","call_start":"2026-11-25 11:15:02","dnis":"4155550173",'
        b'"ani":"8005550100"}'
    ),
}


@pytest.mark.parametrize(("name", "body"), JSON_BODIES.items())
def test_json_body_byte_for_byte(name: str, body: bytes) -> None:
    request = build(name, send_body_as_json=True)
    assert request.method == "POST"
    assert request.body == body
    assert request.url == (CALL_URL if name.startswith("end_call") else AGENT_URL)


# --- URL-encoded queries, byte for byte -----------------------------------------------

QUERIES = {
    "agent_login.json": (
        "external_agent_id=EXT-20417&duration=0&agent_login_id=88201345&account_id=15300002"
        "&event_type=LOGIN&agent_id=1204571&date_time=2026-11-25+09%3A00%3A00"
        "&agent_phone=5551230100&username=jane.doe%40example.com&source_ip=203.0.113.24"
    ),
    "agent_logout.json": (
        "external_agent_id=&duration=30600&agent_login_id=88201345&account_id=15300002"
        "&event_type=LOGOUT&agent_id=1204571&date_time=2026-11-25+17%3A30%3A00"
        "&agent_phone=5551230100&username=jane.doe%40example.com&source_ip=203.0.113.24"
    ),
    "agent_state_custom.json": (
        "agent_id=1204571&prev_state=AVAILABLE&prev_aux_state=&agent_phone=5551230100"
        "&source_ip=203.0.113.24&external_agent_id=EXT-20417&duration=1845"
        "&agent_login_id=88201345&account_id=15300002&event_type=ON+BREAK"
        "&event_aux_type=Coaching+Session&date_time=2026-11-25+10%3A30%3A57&pending_disp=false"
        "&username=jane.doe%40example.com"
    ),
    "end_call_outbound.json": (
        "recording_url=&queue_duration=0&agent_disposition=&gate_name=Renewals+Q4"
        "&call_state=NO+ANSWER&call_duration=28&call_id=640183530482&account_id=15300002"
        "&event_type=VPD-CALL&gate_id=90312&call_start=2026-11-25+11%3A15%3A02"
        "&dnis=4155550173&ani=8005550100"
    ),
}


@pytest.mark.parametrize(("name", "query"), QUERIES.items())
def test_urlencoded_query_byte_for_byte(name: str, query: str) -> None:
    request = build(name)
    base = CALL_URL if name.startswith("end_call") else AGENT_URL
    assert request.method == "POST"
    assert request.body == b""
    assert request.url == f"{base}?{query}"


@pytest.mark.parametrize(
    ("url", "expected_prefix"),
    [
        ("https://wfm.example.com/hook?a=1", "https://wfm.example.com/hook?a=1&"),
        ("https://wfm.example.com/hook?a=1&b=", "https://wfm.example.com/hook?a=1&b=&"),
        ("https://wfm.example.com/hook?a=1&", "https://wfm.example.com/hook?a=1&"),
        ("https://wfm.example.com/hook?", "https://wfm.example.com/hook?"),
        ("https://wfm.example.com", "https://wfm.example.com?"),
        ("https://wfm.example.com/a&b", "https://wfm.example.com/a&b?"),
    ],
)
def test_query_goes_after_the_configured_query(url: str, expected_prefix: str) -> None:
    request = build("agent_login.json", agent_event_url=url)
    assert request.url == expected_prefix + QUERIES["agent_login.json"]


def test_existing_query_survives_parsing() -> None:
    request = build("agent_login.json", agent_event_url="https://h.example/hook?a=1")
    pairs = parse_qsl(urlsplit(request.url).query, keep_blank_values=True)
    assert pairs[0] == ("a", "1")
    assert pairs[1] == ("external_agent_id", "EXT-20417")


# --- payload content --------------------------------------------------------------------


def test_missing_fields_are_left_out_and_extra_fields_not_sent() -> None:
    data = {
        "event_id": "e-1",
        "account_id": "1",
        "agent_id": "a",
        "event_type": "AVAILABLE",
        "secret_internal": "x",
        "call_id": "c1",
    }
    event = make_event(data)
    body = orjson.loads(template(send_body_as_json=True).build(event).body)
    assert list(body) == ["agent_id", "account_id", "event_type", "call_id"]
    query = urlsplit(template().build(event).url).query
    assert parse_qsl(query) == [
        ("agent_id", "a"), ("account_id", "1"), ("event_type", "AVAILABLE"), ("call_id", "c1"),
    ]  # fmt: skip


def test_field_order_follows_the_spec_not_the_input() -> None:
    data = {name: f"v-{name}" for name in reversed(AGENT_STATE_FIELDS)}
    event = make_event(data)
    assert list(orjson.loads(template(send_body_as_json=True).build(event).body)) == list(
        AGENT_STATE_FIELDS
    )
    query = urlsplit(template().build(event).url).query
    assert [name for name, _ in parse_qsl(query)] == list(AGENT_STATE_FIELDS)


def test_login_events_use_the_login_field_list() -> None:
    data = {name: "x" for name in AGENT_STATE_FIELDS + AGENT_LOGIN_FIELDS}
    data["event_type"] = "LOGOUT"
    body = orjson.loads(template(send_body_as_json=True).build(make_event(data)).body)
    assert tuple(body) == AGENT_LOGIN_FIELDS


def test_call_events_use_the_call_field_list() -> None:
    data = {name: "x" for name in AGENT_STATE_FIELDS + CALL_FIELDS}
    event = make_event(data, EventKind.CALL)
    body = orjson.loads(template(EventKind.CALL, send_body_as_json=True).build(event).body)
    assert tuple(body) == CALL_FIELDS


def test_json_values_are_sent_as_given() -> None:
    data = {
        "account_id": "1",
        "event_type": "AVAILABLE",
        "agent_id": 7,
        "duration": 12.5,
        "pending_disp": True,
        "external_agent_id": None,
        "username": {"first": "Jane"},
        "dnis": ["1", 2],
    }
    body = template(send_body_as_json=True).build(make_event(data)).body
    assert body == (
        b'{"agent_id":7,"external_agent_id":null,"duration":12.5,"account_id":"1",'
        b'"event_type":"AVAILABLE","pending_disp":true,"username":{"first":"Jane"},'
        b'"dnis":["1",2]}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("", ""),
        ("a b&c=d", "a b&c=d"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-17, "-17"),
        (2.5, "2.5"),
        (1e20, "1e+20"),
        ({"a": [1, None]}, '{"a":[1,null]}'),
        (["x", 1.5], '["x",1.5]'),
    ],
)
def test_query_value_conversion(value: Any, text: str) -> None:
    assert query_value(value) == text


def test_query_values_are_form_encoded() -> None:
    data = {
        "account_id": "1",
        "event_type": "AVAILABLE",
        "agent_id": "a b&c=d/é",
        "pending_disp": False,
        "external_agent_id": None,
        "duration": 3,
    }
    url = template().build(make_event(data)).url
    assert url == (
        f"{AGENT_URL}?agent_id=a+b%26c%3Dd%2F%C3%A9&external_agent_id=&duration=3"
        "&account_id=1&event_type=AVAILABLE&pending_disp=false"
    )


# --- headers and the rest of the request -------------------------------------------------


def test_headers_json() -> None:
    request = build("agent_login.json", send_body_as_json=True)
    assert request.headers == (
        ("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        ("User-Agent", UA),
        ("Content-Type", "application/json"),
        ("X-WFM-Event-Id", "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"),
    )
    assert request.event_id == "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"


def test_headers_urlencoded_have_no_content_type() -> None:
    request = build("end_call_outbound.json", headers={})
    assert request.headers == (("User-Agent", UA), ("X-WFM-Event-Id", "t:0:1"))


def test_configured_user_agent_and_content_type_replace_the_services() -> None:
    headers = {"user-agent": "Custom/1", "Content-Type": "application/json; charset=utf-8"}
    request = build("agent_login.json", send_body_as_json=True, headers=headers)
    assert request.headers == (
        ("user-agent", "Custom/1"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("X-WFM-Event-Id", "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"),
    )


def test_default_user_agent_names_the_version() -> None:
    assert f"stream-wfm/{__version__}" == DEFAULT_USER_AGENT
    compiled = compile_template(config(), EventKind.AGENT)
    assert compiled is not None
    assert ("User-Agent", DEFAULT_USER_AGENT) in compiled.headers


def test_timeout_and_host_key_come_from_the_config() -> None:
    request = build("agent_login.json", timeout_seconds=2.5)
    assert request.timeout == 2.5
    assert request.host_key == "https://wfm.example.com:443"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://wfm.example.com/x", "https://wfm.example.com:443"),
        ("http://wfm.example.com/x", "http://wfm.example.com:80"),
        ("HTTP://WFM.Example.COM:8080/x?q", "http://wfm.example.com:8080"),
        ("https://[2001:DB8::1]/x", "https://[2001:db8::1]:443"),
        ("http://10.0.0.5:9000", "http://10.0.0.5:9000"),
    ],
)
def test_host_key(url: str, key: str) -> None:
    assert host_key_of(url) == key


def test_no_template_without_a_url_for_the_kind() -> None:
    assert compile_template(config(call_event_url=None), EventKind.CALL, UA) is None
    assert compile_template(config(agent_event_url=None), EventKind.AGENT, UA) is None
    assert compile_template(config(agent_event_url=None), EventKind.CALL, UA) is not None


def test_template_repr_hides_header_values() -> None:
    text = repr(template())
    assert "YWxhZGRpbjpvcGVuc2VzYW1l" not in text
    assert "Authorization" in text


@pytest.mark.parametrize("as_json", [True, False])
def test_unencodable_payload_raises_unformattable(as_json: bool) -> None:
    nested: Any = "deep"
    for _ in range(300):
        nested = [nested]
    event = make_event({"account_id": "1", "event_type": "AVAILABLE", "username": nested})
    with pytest.raises(UnformattableEventError) as info:
        template(send_body_as_json=as_json).build(event)
    assert info.value.retriable is False
    assert info.value.reason == "unformattable_event"


# --- properties -----------------------------------------------------------------------------

text = st.text(max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _payload(fields: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in fields if name in values}


@given(
    st.dictionaries(st.sampled_from((*AGENT_STATE_FIELDS, "other")), text, max_size=25),
    st.sampled_from([AGENT_URL, "https://h.example/p?a=1", "https://h.example/p?"]),
)
def test_urlencoded_query_round_trips(values: dict[str, str], url: str) -> None:
    data = {**values, "account_id": "1", "event_type": "AVAILABLE"}
    request = template(agent_event_url=url).build(make_event(data))
    assert request.url.startswith(url)
    query = request.url[len(url) :].lstrip("?&")
    assert parse_qsl(query, keep_blank_values=True) == list(
        _payload(AGENT_STATE_FIELDS, data).items()
    )


@given(st.dictionaries(st.sampled_from((*CALL_FIELDS, "other", "event_id")), json_values))
def test_json_body_round_trips_in_order(values: dict[str, Any]) -> None:
    data = {**values, "account_id": "1", "event_type": "ACD-CALL", "call_id": "c"}
    event = make_event(data, EventKind.CALL)
    body = template(EventKind.CALL, send_body_as_json=True).build(event).body
    decoded = orjson.loads(body)
    expected = _payload(CALL_FIELDS, data)
    assert list(decoded) == list(expected)
    assert decoded == expected


@given(
    st.lists(
        st.dictionaries(st.sampled_from((*CALL_FIELDS, "other", "event_id")), json_values),
        min_size=1,
        max_size=6,
    )
)
def test_json_bodies_of_one_template_follow_each_event_whatever_came_before(
    events: list[dict[str, Any]],
) -> None:
    """One template, events of changing shapes (fields present or not): the payload of
    each is its own, in order, whatever the template built before."""
    compiled = template(EventKind.CALL, send_body_as_json=True)
    for values in [*events, *events]:
        data = {**values, "account_id": "1", "event_type": "ACD-CALL", "call_id": "c"}
        decoded = orjson.loads(compiled.build(make_event(data, EventKind.CALL)).body)
        expected = _payload(CALL_FIELDS, data)
        assert list(decoded) == list(expected)
        assert decoded == expected


# Text that exercises every branch of the query's fast way and its way back to the
# per-field one: what quote_plus keeps, space, "+", "%" and what it quotes, "&" and "="
# (which send an event the per-field way), non-ASCII, and digits alone.
query_values = (
    st.text(st.sampled_from("aZ09_.-~ +%:@/?#\x00\x7f"), max_size=20)  # the fast way
    | st.text(st.sampled_from("aZ09 +%&="), max_size=10)  # the per-field way...
    | st.text(st.sampled_from("aZ09 +%\u00e9\u260e\U0001f600"), max_size=10)  # ... too
    | json_values
)


def _urlencoded(fields: tuple[str, ...], data: dict[str, Any]) -> str:
    """The query as urllib makes it, for ``data``'s values of ``fields``."""
    return urlencode([(name, query_value(value)) for name, value in _payload(fields, data).items()])


@given(
    st.lists(
        st.tuples(
            st.booleans(),  # a login event (its own field list) or a state change
            st.dictionaries(st.sampled_from((*AGENT_STATE_FIELDS, "other")), query_values),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_urlencoded_query_is_urlencode_whatever_came_before(
    events: list[tuple[bool, dict[str, Any]]],
) -> None:
    """One template, events of changing values and shapes (fields present or not, the
    login field list or the state one for the same keys): each query is urlencode's of
    the event's values, whether it went the fast way or the per-field one."""
    compiled = template()
    for login, values in [*events, *events]:
        data = {**values, "account_id": "1", "event_type": "LOGIN" if login else "AVAILABLE"}
        fields = AGENT_LOGIN_FIELDS if login else AGENT_STATE_FIELDS
        url = compiled.build(make_event(data)).url
        assert url == f"{AGENT_URL}?{_urlencoded(fields, data)}"


def test_urlencoded_query_of_many_shapes_stays_urlencode() -> None:
    """More event shapes than the shape caches hold (keys of their own, and fields present
    or not, by the bits of ``n``): they are emptied, the queries stay urlencode's."""
    compiled = template()
    optional = AGENT_STATE_FIELDS[:12]
    for n in range(3 * 1024 + 3):
        data = {f"x{n}": 1, "account_id": "1", "event_type": "AVAILABLE", "agent_id": f"a {n}"}
        data.update({name: f"{name}:{n}" for bit, name in enumerate(optional) if n >> bit & 1})
        assert (
            compiled.build(make_event(data)).url
            == f"{AGENT_URL}?{_urlencoded(AGENT_STATE_FIELDS, data)}"
        )


def test_urlencoded_query_of_an_event_with_many_keys() -> None:
    """An event with more keys than a shape is kept for: the per-field way, same query."""
    data = {**{f"x{n}": n for n in range(100)}, "account_id": "1", "event_type": "A B"}
    url = template().build(make_event(data)).url
    assert url == f"{AGENT_URL}?{_urlencoded(AGENT_STATE_FIELDS, data)}"


@given(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=150)), max_size=8))
def test_form_quote_of_names_and_values_is_urlencode(pairs: list[tuple[str, str]]) -> None:
    for _ in range(2):  # again, now from the cache
        quoted = "&".join(f"{form_quote(name)}={form_quote(value)}" for name, value in pairs)
        assert quoted == urlencode(pairs)


@pytest.mark.parametrize(
    "text",
    ["", "plain-id_1.2~", "2026-11-25 09:00:00", "a&b=c+d/e?f#g%h", "café ☎", "\x00\r\n\t",
     "x y" * 100, "é" * 200],
)  # fmt: skip
def test_form_quote_is_quote_plus(text: str) -> None:
    assert form_quote(text) == quote_plus(text, safe="")
    assert form_quote(text) == quote_plus(text, safe="")


# --- the request's repr never shows secrets (header values, URL credentials, query, body) ------
SECRET_AUTH = "Basic YWxhZGRpbjpvcGVuc2VzYW1l"


def _secret_request() -> WebhookRequest:
    """A URL-encoded request with a Basic auth header, a query token and payload values in
    the query; and one built by hand with URL credentials and a JSON body."""
    return template(agent_event_url=AGENT_URL + "?token=qs-s3cret").build(
        fixture_event("agent_login.json")
    )


def _hand_made_request() -> WebhookRequest:
    url = "https://user:pw-s3cret@[2001:db8::1]:8443/p/hook?sig=qs-s3cret#frag-s3cret"
    return WebhookRequest(
        "POST",
        url,
        (("Authorization", SECRET_AUTH), ("X-Api-Key", "k-s3cret")),
        b'{"username":"jane.doe@example.com"}',
        5.0,
        host_key_of(url),
        "e-1",
    )


_SECRETS = (
    SECRET_AUTH,
    "YWxhZGRpbjpvcGVuc2VzYW1l",
    "s3cret",
    "jane.doe",  # payload value, in the query or the body
    "88201345",
)


def _assert_no_secret(text: str) -> None:
    for secret in _SECRETS:
        assert secret not in text, f"{secret!r} in {text!r}"


@pytest.mark.parametrize("make", [_secret_request, _hand_made_request])
def test_request_repr_and_str_show_no_secret(make: Any) -> None:
    request = make()
    assert SECRET_AUTH in dict(request.headers).values()  # it is there, just not shown
    for text in (repr(request), str(request), f"{request}", f"{request!r}", format(request)):
        _assert_no_secret(text)
        # ...but what helps to debug is there: the header names, the host and path, the size.
        for name, _value in request.headers:
            assert repr(name) in text
        assert f"body_bytes={len(request.body)}" in text
        assert f"event_id={request.event_id!r}" in text


def test_request_repr_names_the_url_without_credentials_query_or_fragment() -> None:
    text = repr(_hand_made_request())
    assert "url='https://[2001:db8::1]:8443/p/hook?...'" in text
    text = repr(_secret_request())
    assert "url='https://wfm.example.com/ringcx/agent?...'" in text


def test_request_repr_survives_an_unparsable_url() -> None:
    request = WebhookRequest("POST", "http://[::1/x?k=s3cret", (), b"", 1.0, "http://x:80", "e")
    assert "s3cret" not in repr(request)


def test_exceptions_and_log_lines_formed_from_a_request_show_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import traceback

    request = _hand_made_request()
    logger = logging.getLogger("stream_wfm.test_request_repr")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.info("sending %s", request)
        logger.warning("sending %r", request)
        logger.error("failed", extra={"request": request})
        try:
            raise RuntimeError(request)
        except RuntimeError:
            logger.exception("failed to send %s", request)
        try:
            raise ValueError(f"cannot send {request}")
        except ValueError as exc:
            formatted = "".join(traceback.format_exception(exc))
    _assert_no_secret(caplog.text)
    for record in caplog.records:
        _assert_no_secret(record.getMessage())
    _assert_no_secret(formatted)
    assert "Authorization" in formatted


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=6, max_size=40))
def test_no_header_value_reaches_the_repr(value: str) -> None:
    secret = f"SECRET-{value}"
    request = WebhookRequest(
        "POST",
        AGENT_URL,
        (("Authorization", f"Bearer {secret}"), ("X-Token", secret)),
        secret.encode(),
        5.0,
        host_key_of(AGENT_URL),
        "e-1",
    )
    assert secret not in repr(request)
    assert secret not in str(request)


# --- W3C Trace Context from the input record's headers -----------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def kafka_headers(**headers: bytes | None) -> list[tuple[str, bytes | None]]:
    return list(headers.items())


def test_a_valid_traceparent_is_passed_on() -> None:
    assert trace_context(kafka_headers(traceparent=TRACEPARENT.encode())) == (
        ("traceparent", TRACEPARENT),
    )


def test_tracestate_comes_with_a_valid_traceparent() -> None:
    headers = kafka_headers(
        other=b"x", tracestate=TRACESTATE.encode(), traceparent=TRACEPARENT.encode()
    )
    assert trace_context(headers) == (("traceparent", TRACEPARENT), ("tracestate", TRACESTATE))


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        TRACEPARENT.upper().encode(),  # lower-case hex only
        TRACEPARENT.replace("00-", "01-", 1).encode(),  # version 00 only
        TRACEPARENT.replace("00-", "ff-", 1).encode(),
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id too short
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # parent id too short
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",
        (TRACEPARENT + "\n").encode(),
        (" " + TRACEPARENT).encode(),
        (TRACEPARENT + "\r\nX-Injected: 1").encode(),
        TRACEPARENT.encode("utf-16"),
        "00-4bf92f3577b34da6a3ce929d0e0e473\u0664-00f067aa0ba902b7-01".encode(),  # Arabic 4
    ],
)
def test_an_invalid_traceparent_is_ignored_with_its_tracestate(value: bytes | None) -> None:
    headers = kafka_headers(traceparent=value, tracestate=TRACESTATE.encode())
    assert trace_context(headers) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b" congo=t61rcWkgMzE",
        b"congo=t61rcWkgMzE ",
        b"congo=t61rcWkgMzE\r\nX-Injected: 1",
        b"congo=t61rc\tWkgMzE",
        b"congo=\x7f",
        "congo=caf\u00e9".encode(),
        b"\xff\xfe",
        b"a=" + b"b" * 511,  # 513 characters
    ],
)
def test_an_insane_tracestate_is_left_out(value: bytes | None) -> None:
    headers = kafka_headers(traceparent=TRACEPARENT.encode(), tracestate=value)
    assert trace_context(headers) == (("traceparent", TRACEPARENT),)


def test_a_tracestate_of_512_printable_characters_is_passed_on() -> None:
    state = "a=" + "b~ !" * 127 + "cc"
    assert len(state) == 512
    headers = kafka_headers(traceparent=TRACEPARENT.encode(), tracestate=state.encode())
    assert trace_context(headers) == (("traceparent", TRACEPARENT), ("tracestate", state))


def test_no_trace_context_without_a_traceparent() -> None:
    assert trace_context([]) is None
    assert trace_context(kafka_headers(tracestate=TRACESTATE.encode())) is None
    assert trace_context(kafka_headers(**{"trace-parent": TRACEPARENT.encode()})) is None


def test_the_last_traceparent_and_tracestate_count_and_names_ignore_case() -> None:
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    headers = [
        ("traceparent", TRACEPARENT.encode()),
        ("TraceState", b"first=1"),
        ("Traceparent", other.encode()),
        ("tracestate", b"second=2"),
    ]
    assert trace_context(headers) == (("traceparent", other), ("tracestate", "second=2"))
    # The last traceparent decides, even when it is invalid.
    assert trace_context([*headers, ("traceparent", b"garbage")]) is None


def test_a_request_carries_the_trace_headers_after_the_event_id() -> None:
    event = fixture_event("agent_login.json")
    compiled = template(event.kind, send_body_as_json=True)
    trace = (("traceparent", TRACEPARENT), ("tracestate", TRACESTATE))
    request = compiled.build(event, trace)
    assert request.headers == (
        ("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        ("User-Agent", UA),
        ("Content-Type", "application/json"),
        ("X-WFM-Event-Id", "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"),
        ("traceparent", TRACEPARENT),
        ("tracestate", TRACESTATE),
    )
    assert request.body == compiled.build(event).body
    # The template itself is unchanged: the next event without a trace has none.
    assert compiled.build(event).headers == request.headers[:4]


def test_without_a_trace_the_request_headers_are_the_templates() -> None:
    event = fixture_event("end_call_outbound.json")
    compiled = template(event.kind, headers={})
    for request in (compiled.build(event), compiled.build(event, None)):
        assert request.headers == (*compiled.headers, ("X-WFM-Event-Id", "t:0:1"))


@pytest.mark.parametrize("name", ["traceparent", "TraceParent"])
def test_a_configured_traceparent_wins_and_the_inputs_tracestate_is_left_out(name: str) -> None:
    configured = "00-11111111111111111111111111111111-2222222222222222-00"
    event = fixture_event("agent_login.json")
    compiled = template(event.kind, headers={name: configured})
    request = compiled.build(event, (("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)))
    assert request.headers == (
        (name, configured),
        ("User-Agent", UA),
        ("X-WFM-Event-Id", "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"),
    )


def test_a_configured_tracestate_wins_over_the_inputs() -> None:
    event = fixture_event("agent_login.json")
    compiled = template(event.kind, headers={"Tracestate": "mine=1"})
    request = compiled.build(event, (("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)))
    assert request.headers == (
        ("Tracestate", "mine=1"),
        ("User-Agent", UA),
        ("X-WFM-Event-Id", "2a0f6c1e-5b7d-4c1a-9e7a-0d4b8f3c2e11"),
        ("traceparent", TRACEPARENT),
    )


@given(st.lists(st.tuples(st.text(max_size=15), st.binary(max_size=80) | st.none()), max_size=6))
def test_trace_context_of_any_headers_is_none_or_sane(
    headers: list[tuple[str, bytes | None]],
) -> None:
    trace = trace_context(headers)
    if trace is None:
        return
    assert [name for name, _ in trace] in (["traceparent"], ["traceparent", "tracestate"])
    for _, value in trace:
        assert value.isascii()
        assert value.isprintable()
        assert value == value.strip()
