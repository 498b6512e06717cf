"""Structured logging: one JSON object per line (or plain text), secrets redacted.

Log calls pass context as ``extra={...}`` (never f-strings). The formatters
add every extra field to the line. Redaction runs on the final text of every
field: URL credentials (``https://user:pass@host``) and credential-looking
header values (``Authorization: Basic …``) are replaced by ``***``. Integration
header values are never passed to a log call in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*(?::[^/\s@]*)?@")
_CREDENTIAL = re.compile(
    r"""(?ix)
    (?P<name>(?<![\w-])(?:(?:proxy-)?authorization|x-api-key|api-key|apikey|x-auth-token
        |set-cookie|cookie))
    (?P<q1>["']?)                                     # a quoted name's closing quote
    (?P<sep>\s*[:=]\s*)
    (?:
        (?P<q2>["'])(?:[^"'\\]|\\.)*(?P=q2)           # a quoted value: all of it
      | (?:(?:basic|bearer|digest|token)\s+)?[^\s,;"'}\]]+  # a bare value (scheme + token)
    )
    """
)


def _mask_credential(match: re.Match[str]) -> str:
    quote = match.group("q2") or ""
    return f"{match.group('name')}{match.group('q1')}{match.group('sep')}{quote}***{quote}"


_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def redact(text: str) -> str:
    """Remove URL credentials and credential header values from ``text``."""
    if "@" in text:
        text = _URL_USERINFO.sub(r"\1***@", text)
    return _CREDENTIAL.sub(_mask_credential, text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            line[key] = _clean(value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={_clean(v)}" for k, v in _extras(record).items())
        text = f"{stamp} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        if fields:
            text = f"{text} {fields}"
        if record.exc_info:
            text = f"{text}\n{redact(self.formatException(record.exc_info))}"
        return text


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Install the formatter on the root logger (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
