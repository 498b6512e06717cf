"""Structured logs: JSON lines, text format, extras, and redaction of URL
credentials and credential header values everywhere in a line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stream_wfm.ops.logging import JsonFormatter, TextFormatter, configure_logging, redact

CREATED = 1_795_600_000.25  # a fixed record time
CREATED_UTC = "2026-11-25T09:46:40.250Z"


def make_record(
    msg: str,
    *args: object,
    level: int = logging.INFO,
    exc_info: Any = None,
    **extra: Any,
) -> logging.LogRecord:
    record = logging.getLogger("stream_wfm.test").makeRecord(
        "stream_wfm.test", level, __file__, 1, msg, args, exc_info, extra=extra
    )
    record.created = CREATED
    record.msecs = 250.0
    return record


def json_line(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line, "one JSON object per line"
    parsed: dict[str, Any] = orjson.loads(line)
    return parsed


# --- JSON lines ---------------------------------------------------------------------------


def test_json_line_has_the_standard_fields() -> None:
    parsed = json_line(make_record("delivery failed", level=logging.WARNING))
    assert parsed == {
        "ts": CREATED_UTC,
        "level": "warning",
        "logger": "stream_wfm.test",
        "msg": "delivery failed",
    }
    assert datetime.strptime(parsed["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=UTC
    ).timestamp() == pytest.approx(CREATED)


def test_json_line_carries_every_extra_field_with_its_json_type() -> None:
    parsed = json_line(
        make_record(
            "delivery failed",
            account_id="15300002",
            event_id="e-1",
            outcome="retryable",
            status=503,
            attempt=2,
            elapsed=0.25,
            retried=True,
            error=None,
        )
    )
    assert parsed["account_id"] == "15300002"
    assert parsed["event_id"] == "e-1"
    assert parsed["outcome"] == "retryable"
    assert parsed["status"] == 503
    assert parsed["attempt"] == 2
    assert parsed["elapsed"] == 0.25
    assert parsed["retried"] is True
    assert parsed["error"] is None


def test_json_line_renders_other_types_as_text() -> None:
    parsed = json_line(
        make_record("x", partitions=[("t", 0), ("t", 1)], when=datetime(2026, 1, 2, tzinfo=UTC))
    )
    assert parsed["partitions"] == "[('t', 0), ('t', 1)]"
    assert parsed["when"] == "2026-01-02 00:00:00+00:00"


def test_json_message_arguments_are_interpolated_and_quotes_escaped() -> None:
    parsed = json_line(make_record('got "%s" from %d', "a\nb", 7))
    assert parsed["msg"] == 'got "a\nb" from 7'


def test_json_exception_is_one_field_and_redacted() -> None:
    try:
        raise ValueError("cannot reach https://user:hunter2-secret@wfm.example.com/hook")
    except ValueError:
        record = make_record("failed", exc_info=sys.exc_info())
    parsed = json_line(record)
    assert "Traceback" in parsed["exc"]
    assert "ValueError: cannot reach https://***@wfm.example.com/hook" in parsed["exc"]
    assert "hunter2-secret" not in JsonFormatter().format(record)


# --- text -----------------------------------------------------------------------------------


def test_text_line() -> None:
    line = TextFormatter().format(
        make_record("event dead-lettered", level=logging.WARNING, account_id="1", reason="x")
    )
    stamp = datetime.fromtimestamp(CREATED).strftime("%H:%M:%S")
    assert line == (f"{stamp} WARNING stream_wfm.test: event dead-lettered account_id=1 reason=x")


def test_text_line_redacts_message_and_fields() -> None:
    line = TextFormatter().format(
        make_record(
            "POST https://u:pw-123456@h.example/x",
            error="Authorization: Bearer tok-abcdef123456",
        )
    )
    assert "pw-123456" not in line
    assert "tok-abcdef123456" not in line
    assert "https://***@h.example/x" in line
    assert "error=Authorization: ***" in line


# --- configure_logging ----------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(access)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logging_writes_the_chosen_format_to_stderr(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    configure_logging(fmt, "WARNING")
    log = logging.getLogger("stream_wfm.somewhere")
    log.info("not shown")
    log.warning("shown", extra={"account_id": "42"})
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    if fmt == "json":
        parsed = orjson.loads(line)
        assert parsed["msg"] == "shown"
        assert parsed["account_id"] == "42"
        assert parsed["logger"] == "stream_wfm.somewhere"
    else:
        assert line.endswith("WARNING stream_wfm.somewhere: shown account_id=42")
    assert len(logging.getLogger().handlers) == 1
    assert logging.getLogger("aiohttp.access").level == logging.WARNING


# --- redact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pass@wfm.example.com/a", "https://***@wfm.example.com/a"),
        ("HTTP://USER:PASS@WFM.EXAMPLE.COM", "HTTP://***@WFM.EXAMPLE.COM"),
        ("http://token@host:8080/x?y=1", "http://***@host:8080/x?y=1"),
        ("http://:only-password@host", "http://***@host"),
        ("redis://u:p%40ss@h/0 and https://a:b@c/", "redis://***@h/0 and https://***@c/"),
        ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Authorization: ***"),
        ("authorization:Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "authorization:***"),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Proxy-Authorization: ***"),
        ("X-API-Key: 0123456789abcdef", "X-API-Key: ***"),
        ("api-key=0123456789abcdef, done", "api-key=***, done"),
        ('{"x": 1, authorization="Basic abc"}', '{"x": 1, authorization="***"}'),
        ("Cookie: session=abc123", "Cookie: ***"),
    ],
)
def test_redact_removes_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "delivered to https://wfm.example.com/ringcx/agent?account=1",
        "user@example.com wrote",
        "authorized: yes",
        "HTTP 503 from wfm.example.com",
    ],
)
def test_redact_leaves_other_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "{'Authorization': 'Basic c2VjcmV0LXZhbHVl'}",  # a headers dict rendered by str()
        '{"Authorization": "Basic c2VjcmV0LXZhbHVl"}',  # JSON text in a message
    ],
)
def test_redact_quoted_header_names(text: str) -> None:
    assert "c2VjcmV0LXZhbHVl" not in redact(text)


def test_dict_extra_field_is_redacted() -> None:
    record = make_record("x", headers={"Authorization": "Basic c2VjcmV0LXZhbHVl"})
    assert "c2VjcmV0LXZhbHVl" not in JsonFormatter().format(record)


# Basic/Bearer credentials are token68 (RFC 9110): letters, digits, -._~+/ and trailing =.
TOKEN68 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/",
    min_size=8,
    max_size=48,
).map(lambda s: s + "==")
# A URL password: unreserved and sub-delims characters, percent-encoded bytes, colons.
USERINFO = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:%",
    min_size=8,
    max_size=48,
)
EMBEDDINGS = {
    "basic": ("Authorization: Basic {}", TOKEN68),
    "bearer": ("authorization: Bearer {}", TOKEN68),
    "equals": ("Authorization=Basic {}", TOKEN68),
    "api-key": ("X-API-Key: {}", TOKEN68),
    "url": ("https://user:{}@wfm.example.com/hook", USERINFO),
    "url-port-query": ("http://svc:{}@10.1.2.3:8080/a?b=c", USERINFO),
}
# Context around the credential, ending/starting at a word boundary.
CONTEXT = st.text(alphabet="abcdefghij ABC.;()[]#?-0123456789", max_size=30)


@st.composite
def secret_lines(draw: st.DrawFn) -> tuple[str, str, str]:
    """(secret, text with the secret embedded, the same text without it)."""
    template, secrets = EMBEDDINGS[draw(st.sampled_from(sorted(EMBEDDINGS)))]
    secret = draw(secrets)
    before, after = draw(CONTEXT), draw(CONTEXT)
    return (
        secret,
        f"{before} {template.format(secret)} {after}",
        f"{before} {template.format('<removed>')} {after}",
    )


@given(
    line=secret_lines(),
    where=st.sampled_from(["message", "argument", "extra", "exception"]),
    formatter=st.sampled_from([JsonFormatter(), TextFormatter()]),
)
def test_secret_never_appears_in_formatted_output(
    line: tuple[str, str, str], where: str, formatter: logging.Formatter
) -> None:
    secret, text, without = line

    def record(embedded: str) -> logging.LogRecord:
        if where == "message":
            return make_record(embedded, account_id="1")
        if where == "argument":
            return make_record("calling %s now", embedded)
        if where == "extra":
            return make_record("delivery failed", error=embedded, event_id="e-1")
        try:
            raise RuntimeError(embedded)
        except RuntimeError:
            return make_record("failed", exc_info=sys.exc_info())

    # The secret must not occur by chance in the rest of the line (time stamp, names...).
    assume(secret not in formatter.format(record(without)))
    output = formatter.format(record(text))
    assert secret not in output
    if formatter.__class__ is JsonFormatter:
        orjson.loads(output)
