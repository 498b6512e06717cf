"""Signed webhooks (docs/contract.md §3, §5, §11): ``signing_secrets`` validated, masked
and revealed where they belong; the Standard Webhooks signature our code makes, checked
by the reference library (``standardwebhooks``) for JSON and URL-encoded requests with
one to three secrets."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from stream_wfm.delivery import signing as signing_module
from stream_wfm.delivery.h1_wire import HeaderBlocks, encode_request
from stream_wfm.delivery.request import WebhookRequest, compile_template
from stream_wfm.delivery.signing import SignedWebhookRequest
from stream_wfm.events import Event, EventKind, decode_event
from stream_wfm.integrations.exceptions import ConfigValidationError
from stream_wfm.integrations.model import (
    MASK,
    IntegrationConfig,
    config_to_public_dict,
    config_to_record_value,
    parse_config_record,
    validate_config,
)
from stream_wfm.integrations.signing import (
    fingerprint,
    new_signing_secret,
    signing_key,
)

AGENT_URL = "https://wfm.example.com/ringcx/agent"
NOW = 1_800_000_000


def secret_of(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


SECRET_A = secret_of(bytes(range(24)))
SECRET_B = secret_of(bytes(range(100, 132)))
SECRET_C = secret_of(bytes(range(190, 254)))

keys = st.binary(min_size=24, max_size=64)
secret_lists = st.lists(keys, min_size=1, max_size=3, unique=True).map(
    lambda ks: [secret_of(k) for k in ks]
)


def config(**fields: Any) -> IntegrationConfig:
    base: dict[str, Any] = {
        "account_id": "15300002",
        "agent_event_url": AGENT_URL,
        "agent_login_events": True,
    }
    return validate_config({**base, **fields})


def refusal(secrets: Any) -> ConfigValidationError:
    with pytest.raises(ConfigValidationError) as info:
        validate_config({"account_id": "1", "signing_secrets": secrets})
    return info.value


def assert_not_revealed(error: ConfigValidationError, secrets: list[Any]) -> None:
    """No secret, nor the base64 after its prefix, is in the error's text or fields."""
    texts = [str(error), *(f"{e.field}: {e.message}" for e in error.field_errors)]
    for secret in secrets:
        if not isinstance(secret, str):
            continue
        body = secret.removeprefix("whsec_")
        for text in texts:
            assert secret not in text
            if len(body) >= 4:
                assert body not in text


def login(event_id: str = "ev-1", **data: Any) -> Event:
    raw = {
        "account_id": "15300002",
        "event_type": "LOGIN",
        "agent_id": "1204571",
        "username": "jane.doe@example.com",
        "date_time": "2026-11-25 09:00:00",
        **data,
    }
    return decode_event(orjson.dumps(raw), EventKind.AGENT, event_id)


def signed_request(secrets: list[str], as_json: bool, url: str = AGENT_URL) -> WebhookRequest:
    template = compile_template(
        config(signing_secrets=secrets, send_body_as_json=as_json, agent_event_url=url),
        EventKind.AGENT,
    )
    assert template is not None
    return template.build(login())


def signed_content(request: WebhookRequest) -> bytes:
    """What a receiver verifies: the body of a JSON request, else the query as sent."""
    if request.body:
        return request.body
    return request.url.partition("?")[2].encode()


def verify(secret: str, request: WebhookRequest) -> None:
    """``standardwebhooks``' verification of a stamped ``request`` (now: the real clock)."""
    Webhook(secret).verify(signed_content(request), dict(request.headers), json_parse=False)


# --- validation --------------------------------------------------------------------------


@given(secret_lists)
def test_valid_secrets_are_kept_in_order(secrets: list[str]) -> None:
    cfg = validate_config({"account_id": "1", "signing_secrets": secrets})
    assert [s.get_secret_value() for s in cfg.signing_secrets] == secrets


def test_no_secrets_by_default_and_null_means_none() -> None:
    assert validate_config({"account_id": "1"}).signing_secrets == []
    assert validate_config({"account_id": "1", "signing_secrets": None}).signing_secrets == []
    assert validate_config({"account_id": "1", "signing_secrets": []}).signing_secrets == []


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(signing_key(first)) == 32
    validate_config({"account_id": "1", "signing_secrets": [first, second]})


@given(keys, st.sampled_from(["", "whsec", "WHSEC_", "whsk_", "wh_", " whsec_", "sec_"]))
def test_a_secret_without_the_whsec_prefix_is_refused_without_showing_it(
    key: bytes, prefix: str
) -> None:
    bad = prefix + base64.b64encode(key).decode()
    error = refusal([SECRET_A, bad])
    assert [(e.field, e.message) for e in error.field_errors] == [
        ("signing_secrets", "secret 2 must start with whsec_")
    ]
    assert_not_revealed(error, [SECRET_A, bad])


def _damaged(key: bytes, how: int) -> str:
    body = base64.b64encode(key).decode()
    if how == 0:
        return "whsec_" + body + "A"  # not a multiple of 4 characters
    if how == 1:
        return "whsec_" + body[:-4] + "!" + body[-3:]  # not a base64 character
    if how == 2:
        return "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" + key[2:]).decode()  # - and _
    if how == 3:
        return "whsec_" + body[:8] + " " + body[9:]
    return "whsec_" + body + "===="  # too much padding


@given(keys, st.integers(min_value=0, max_value=4))
def test_a_secret_that_is_not_standard_base64_is_refused_without_showing_it(
    key: bytes, how: int
) -> None:
    bad = _damaged(key, how)
    error = refusal([bad])
    [problem] = error.field_errors
    assert problem.field == "signing_secrets"
    assert problem.message.startswith("secret 1 is not standard base64"), problem.message
    assert_not_revealed(error, [bad])


def test_unpadded_base64_is_refused_as_the_libraries_pad_it() -> None:
    unpadded = SECRET_B.rstrip("=")  # 32 bytes: 43 characters without the padding
    assert unpadded != SECRET_B
    error = refusal([unpadded])
    assert "is not standard base64" in error.field_errors[0].message
    assert_not_revealed(error, [unpadded])


def test_base64_with_stray_bits_in_the_last_character_is_refused() -> None:
    # "AQ==" is the one canonical form of b"\x01"; "AR==" decodes to it too.
    stray = "whsec_" + "A" * 32 + "AR=="
    error = refusal([stray])
    assert "is not standard base64" in error.field_errors[0].message


@given(st.binary(max_size=23) | st.binary(min_size=65, max_size=120))
def test_a_key_of_the_wrong_size_is_refused_without_showing_it(key: bytes) -> None:
    bad = secret_of(key)
    error = refusal([SECRET_A, SECRET_B, bad])
    [problem] = error.field_errors
    assert problem.field == "signing_secrets"
    assert problem.message.startswith("secret 3 must be the base64 of 24 to 64 bytes")
    assert_not_revealed(error, [SECRET_A, SECRET_B, bad])


@given(st.lists(keys, min_size=4, max_size=6, unique=True))
def test_at_most_three_secrets(many: list[bytes]) -> None:
    secrets = [secret_of(k) for k in many]
    error = refusal(secrets)
    assert [e.message for e in error.field_errors] == ["at most 3 signing secrets are allowed"]
    assert_not_revealed(error, secrets)


@given(keys, keys)
def test_a_secret_given_twice_is_refused(key: bytes, other: bytes) -> None:
    secret = secret_of(key)
    secrets = [secret, secret_of(other), secret] if key != other else [secret, secret]
    error = refusal(secrets)
    messages = [e.message for e in error.field_errors]
    last = len(secrets)
    assert messages == [f"secret {last} is the same as secret 1"]
    assert_not_revealed(error, secrets)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("whsec_" + "A" * 32, "must be a list of secrets (strings), or null"),
        ({"a": SECRET_A}, "must be a list of secrets (strings), or null"),
        (3, "must be a list of secrets (strings), or null"),
        ([SECRET_A, 7], "secret 2 must be a string"),
        ([None], "secret 1 must be a string"),
        (["whsec_" + "A" * 5000], "secret 1 must be the base64 of 24 to 64 bytes"),
    ],
)
def test_a_secret_list_of_the_wrong_shape_is_refused(value: Any, message: str) -> None:
    error = refusal(value)
    assert [(e.field, e.message) for e in error.field_errors] == [("signing_secrets", message)]
    assert_not_revealed(error, value if isinstance(value, list) else [value])


@pytest.mark.parametrize(
    "name", ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "webhook-signature"]
)
@pytest.mark.parametrize("signed", [False, True])
def test_the_signature_headers_cannot_be_configured_signed_or_not(name: str, signed: bool) -> None:
    secrets = [SECRET_A] if signed else []
    with pytest.raises(ConfigValidationError) as info:
        validate_config({"account_id": "1", "headers": {name: "v1,x"}, "signing_secrets": secrets})
    assert [(e.field, e.message) for e in info.value.field_errors] == [
        ("headers", f"{name!r} cannot be set")
    ]


# --- where secrets are written, masked and never shown --------------------------------------


def test_the_record_holds_the_secrets_revealed_and_round_trips() -> None:
    cfg = config(signing_secrets=[SECRET_B, SECRET_A])
    value = config_to_record_value(cfg)
    assert orjson.loads(value)["signing_secrets"] == [SECRET_B, SECRET_A]
    assert parse_config_record(b"15300002", value) == cfg
    assert orjson.loads(config_to_record_value(config()))["signing_secrets"] == []


def test_the_public_dict_masks_each_secret_keeping_the_count_unless_asked() -> None:
    cfg = config(signing_secrets=[SECRET_C, SECRET_B, SECRET_A])
    public = config_to_public_dict(cfg)
    assert public["signing_secrets"] == [MASK, MASK, MASK]
    text = orjson.dumps(public).decode()
    for secret in (SECRET_A, SECRET_B, SECRET_C):
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
    shown = config_to_public_dict(cfg, show_secrets=True)
    assert shown["signing_secrets"] == [SECRET_C, SECRET_B, SECRET_A]
    assert config_to_public_dict(config())["signing_secrets"] == []


def test_no_secret_in_the_repr_of_a_config_template_or_request() -> None:
    cfg = config(signing_secrets=[SECRET_B, SECRET_A])
    template = compile_template(cfg, EventKind.AGENT)
    assert template is not None
    request = template.build(login())
    texts = [repr(cfg), str(cfg), repr(template), repr(request), str(request)]
    texts.append(repr(request.stamped(NOW)))
    for text in texts:
        for secret in (SECRET_A, SECRET_B):
            assert secret not in text
            assert secret.removeprefix("whsec_") not in text


def test_a_fingerprint_is_short_stable_and_not_the_secret() -> None:
    assert fingerprint(SECRET_A) == fingerprint(SECRET_A)
    assert fingerprint(SECRET_A) != fingerprint(SECRET_B)
    assert len(fingerprint(SECRET_A)) == 8
    assert fingerprint(SECRET_A) not in SECRET_A


# --- the signature, verified by the reference library ----------------------------------------


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "urlencoded"])
@given(secrets=secret_lists)
@settings(max_examples=30)
def test_every_secret_alone_verifies_the_signature(as_json: bool, secrets: list[str]) -> None:
    stamped = signed_request(secrets, as_json).stamped()
    headers = dict(stamped.headers)
    assert headers["webhook-id"] == headers["X-WFM-Event-Id"] == "ev-1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == len(secrets)
    assert all(s.startswith("v1,") for s in signatures)
    for secret in secrets:  # what rotation relies on: each secret alone verifies
        verify(secret, stamped)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "urlencoded"])
def test_a_secret_not_in_the_list_or_changed_content_does_not_verify(as_json: bool) -> None:
    stamped = signed_request([SECRET_A, SECRET_B], as_json).stamped()
    with pytest.raises(WebhookVerificationError):
        verify(SECRET_C, stamped)
    headers = dict(stamped.headers)
    content = signed_content(stamped)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(content + b"x", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(content, {**headers, "webhook-id": "ev-2"}, json_parse=False)


def test_the_signatures_come_in_the_order_of_the_secrets() -> None:
    stamped = signed_request([SECRET_C, SECRET_A], True).stamped()
    first, second = dict(stamped.headers)["webhook-signature"].split(" ")
    headers = dict(stamped.headers)
    verify(SECRET_C, stamped)
    Webhook(SECRET_C).verify(
        stamped.body, {**headers, "webhook-signature": first}, json_parse=False
    )
    Webhook(SECRET_A).verify(
        stamped.body, {**headers, "webhook-signature": second}, json_parse=False
    )


def test_the_timestamp_is_when_the_request_is_stamped_not_built() -> None:
    request = signed_request([SECRET_A], True)
    early = dict(request.stamped(NOW).headers)
    later = dict(request.stamped(NOW + 90).headers)
    assert early["webhook-timestamp"] == str(NOW)
    assert later["webhook-timestamp"] == str(NOW + 90)
    assert early["webhook-signature"] != later["webhook-signature"]


def test_the_json_signature_is_hmac_sha256_over_id_timestamp_and_body() -> None:
    import hashlib
    import hmac

    stamped = signed_request([SECRET_A], True).stamped(NOW)
    headers = dict(stamped.headers)
    expected = hmac.new(
        bytes(range(24)), b"ev-1.%d.%s" % (NOW, stamped.body), hashlib.sha256
    ).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_the_urlencoded_signature_covers_the_whole_query_as_sent() -> None:
    url = AGENT_URL + "?tenant=acme&x=1"
    stamped = signed_request([SECRET_A], False, url).stamped()
    query = stamped.url.partition("?")[2]
    assert query.startswith("tenant=acme&x=1&account_id=15300002&")
    assert stamped.body == b""
    verify(SECRET_A, stamped)


def test_a_query_clients_would_escape_differently_is_sent_escaped_and_signed_so() -> None:
    url = AGENT_URL + "?tag=caf\u00e9&q=\"a\"&w='b'&lt=<>"
    request = signed_request([SECRET_A], False, url)
    assert request.url.startswith(AGENT_URL + "?tag=caf%C3%A9&q=%22a%22&w=%27b%27&lt=%3C%3E&")
    assert request.url.isascii()
    verify(SECRET_A, request.stamped())
    # Unsigned, the URL is sent as configured (what the transports make of it is theirs).
    unsigned = compile_template(config(agent_event_url=url), EventKind.AGENT)
    assert unsigned is not None
    assert unsigned.build(login()).url.startswith(url + "&")


def test_the_signature_headers_come_after_the_event_id_and_trace_headers() -> None:
    template = compile_template(config(signing_secrets=[SECRET_A]), EventKind.AGENT)
    assert template is not None
    trace = (("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),)
    stamped = template.build(login(), trace).stamped(NOW)
    assert [name for name, _ in stamped.headers][-5:] == [
        "X-WFM-Event-Id",
        "traceparent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]


def test_keys_are_decoded_once_per_template_never_per_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = signing_key

    def counting(secret: str) -> bytes:
        calls.append("decoded")
        return real(secret)

    monkeypatch.setattr(signing_module, "signing_key", counting)
    template = compile_template(config(signing_secrets=[SECRET_B, SECRET_A]), EventKind.AGENT)
    assert template is not None
    assert len(calls) == 2
    for n in range(50):
        template.build(login(f"ev-{n}")).stamped()
    assert len(calls) == 2


def test_an_unsigned_template_builds_plain_requests() -> None:
    template = compile_template(config(), EventKind.AGENT)
    assert template is not None
    request = template.build(login())
    assert type(request) is WebhookRequest
    assert request.signed is False
    assert request.stamped() is request
    assert "webhook-signature" not in dict(request.headers)


def test_a_signed_template_builds_signed_requests() -> None:
    template = compile_template(config(signing_secrets=[SECRET_A]), EventKind.AGENT)
    assert template is not None
    request = template.build(login())
    assert isinstance(request, SignedWebhookRequest)
    assert request.signed is True
    assert "webhook-signature" not in dict(request.headers)  # stamped when sent
    stamped = request.stamped(NOW)
    assert stamped.signed is False
    assert stamped.stamped() is stamped


# --- h1 on the wire ----------------------------------------------------------------------


def test_h1_writes_the_signature_headers_stamped_as_it_encodes() -> None:
    request = signed_request([SECRET_A, SECRET_B], True)
    blocks = HeaderBlocks()
    wire = encode_request(request, "wfm.example.com", blocks)
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert body == request.body
    assert [line.split(":")[0] for line in lines[-4:]] == [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "Content-Length",
    ]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    Webhook(SECRET_B).verify(body, headers, json_parse=False)
    # The cached header block is the template's, not one per event.
    encode_request(signed_request([SECRET_A, SECRET_B], True), "wfm.example.com", blocks)
    assert len(blocks) == 1


@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.parametrize("count", [1, 3])
def test_the_signature_block_is_the_signature_headers_on_the_wire(
    as_json: bool, count: int
) -> None:
    """What h1 writes (:meth:`signature_block`) is what the other transports send
    (:meth:`signature_headers`), at the same time, and one second later as well."""
    request = signed_request([SECRET_A, SECRET_B, SECRET_C][:count], as_json)
    for now in (NOW, NOW + 0.5, NOW + 1, NOW):
        lines = "".join(f"{name}: {value}\r\n" for name, value in request.signature_headers(now))
        assert request.signature_block(now) == lines.encode("latin-1")
    assert request.signature_headers(NOW)[1] == ("webhook-timestamp", str(NOW))


@pytest.mark.parametrize("event_id", ["e\r\nX-Injected: 1", "e\n", "\u20ac"])
def test_a_signature_block_refuses_an_event_id_no_header_can_carry(event_id: str) -> None:
    from stream_wfm.delivery.exceptions import UnencodableRequestError

    template = compile_template(config(signing_secrets=[SECRET_A]), EventKind.AGENT)
    assert template is not None
    plain = template.build(login())
    assert isinstance(plain, SignedWebhookRequest)
    request = SignedWebhookRequest(
        plain.method, plain.url, plain.headers[:-1], plain.body, plain.timeout,
        plain.host_key, event_id, signer=plain.signer,
    )  # fmt: skip
    with pytest.raises(UnencodableRequestError):
        request.signature_block(NOW)
    with pytest.raises(UnencodableRequestError):
        encode_request(request, "h")
