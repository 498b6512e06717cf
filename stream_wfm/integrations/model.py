"""The integration config of one account (docs/contract.md §3) and its validation.

One function validates a config for every writer and reader: the config
store, ``stream-wfm config put|validate`` and the console all call
:func:`validate_config` (or :func:`parse_config_record` for raw records).

Rules beyond the field types and ranges of docs/contract.md §3:

* ``account_id``: 1 to 64 characters, no whitespace or control characters.
* URLs (``agent_event_url``, ``call_event_url``): absolute ``http`` or
  ``https`` URLs with a host resolvers accept (IDNA: no empty label, none over
  63 characters), at most 2048 characters, no whitespace or
  control characters, a valid port if any. A URL with a user name or
  password (``https://user:pw@host``) is refused: URLs show up in logs and
  on the console, credentials belong in a header. A URL with a fragment
  (``#...``) is refused rather than silently cut. Nothing is stripped or
  normalised. The empty string means null (web forms post empty fields).
* ``headers``: at most 50; names are RFC 7230 tokens of at most 256
  characters, unique ignoring case; values are at most 8192 characters of
  printable ASCII, space and tab (so no CR, LF or other control character).
  ``Host``, ``Content-Length``, ``Transfer-Encoding`` and ``Connection``
  (docs/contract.md §3) and ``X-WFM-Event-Id`` (the service sets it from the event) cannot
  be set. ``User-Agent`` and ``Content-Type`` may be set: a configured one
  replaces the service's own.
* Booleans must be JSON booleans and numbers JSON numbers (no ``"true"`` or
  ``"3"``); ``max_retries`` accepts an integral float such as ``3.0``, as JSON
  Schema's ``integer`` does.

Header values are :class:`~pydantic.SecretStr`: they never show in ``repr``,
in logs or in validation messages, which name the header but never its value.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from stream_wfm.events import EventKind
from stream_wfm.integrations.exceptions import ConfigValidationError, FieldError

__all__ = [
    "FORBIDDEN_HEADER_NAMES",
    "MASK",
    "ConfigValidationError",
    "FieldError",
    "IntegrationConfig",
    "config_to_public_dict",
    "config_to_record_value",
    "parse_config_record",
    "validate_config",
]

MASK: Final = "********"
MAX_ACCOUNT_ID_LENGTH: Final = 64
MAX_URL_LENGTH: Final = 2048
MAX_HEADERS: Final = 50
MAX_HEADER_NAME_LENGTH: Final = 256
MAX_HEADER_VALUE_LENGTH: Final = 8192
MAX_RETRIES_LIMIT: Final = 10
TIMEOUT_MIN: Final = 1
TIMEOUT_MAX: Final = 30

#: Header names a config cannot set (lower case).
FORBIDDEN_HEADER_NAMES: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "x-wfm-event-id"}
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t -~]*")
_ACCOUNT_ID = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")
_URL_BAD_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_URL_FIELDS = ("agent_event_url", "call_event_url")
_NOT_URL = "must be an absolute http or https URL"


class _Invalid(ValueError):
    """Raised by our validators: carries one or more messages we wrote ourselves."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _show(text: object, limit: int = 64) -> str:
    """A short, one-line, quoted rendering of a name (never used for header values)."""
    value = str(text)
    return repr(value[:limit] + "...") if len(value) > limit else repr(value)


def _check_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise _Invalid(f"must be at most {MAX_URL_LENGTH} characters")
    if _URL_BAD_CHAR.search(url):
        raise _Invalid("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _Invalid(_NOT_URL) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(_NOT_URL)
    try:
        parts.hostname.encode("idna")  # what resolvers do with it: e.g. labels ≤ 63 chars
    except UnicodeError:
        raise _Invalid("has an invalid host name") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _Invalid("has an invalid port")
    if "@" in parts.netloc:
        raise _Invalid("must not contain a user name or password (use an Authorization header)")
    if "#" in url:
        raise _Invalid("must not contain a fragment (#...)")
    return url


def _header_problems(headers: dict[Any, Any]) -> list[str]:
    problems: list[str] = []
    if len(headers) > MAX_HEADERS:
        problems.append(f"at most {MAX_HEADERS} headers are allowed")
    seen: set[str] = set()
    for name, value in headers.items():
        if type(name) is not str or not _TOKEN.fullmatch(name):
            problems.append(f"{_show(name)} is not a valid header name")
            continue
        if len(name) > MAX_HEADER_NAME_LENGTH:
            problems.append(f"{_show(name)} is longer than {MAX_HEADER_NAME_LENGTH} characters")
            continue
        lower = name.lower()
        if lower in FORBIDDEN_HEADER_NAMES:
            problems.append(f"{_show(name)} cannot be set")
        elif lower in seen:
            problems.append(f"{_show(name)} is given more than once (names ignore case)")
        seen.add(lower)
        if type(value) is not str:
            problems.append(f"the value of {_show(name)} must be a string")
        elif len(value) > MAX_HEADER_VALUE_LENGTH:
            problems.append(
                f"the value of {_show(name)} is longer than {MAX_HEADER_VALUE_LENGTH} characters"
            )
        elif not _HEADER_VALUE.fullmatch(value):
            problems.append(
                f"the value of {_show(name)} must be printable ASCII "
                "(no CR, LF or other control characters)"
            )
    return problems


class IntegrationConfig(BaseModel):
    """The "Generic HTTP" WFM integration of one account (docs/contract.md §3)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)

    account_id: str = Field(description="The account; equals the config record's key.")
    enabled: bool = Field(default=True, description="False: nothing is sent.")
    agent_event_url: str | None = Field(
        default=None, description="Where agent events go; null: agent events are not sent."
    )
    call_event_url: str | None = Field(
        default=None, description="Where end-call events go; null: call events are not sent."
    )
    send_body_as_json: bool = Field(
        default=False, description="True: JSON body; false: form-encoded query string."
    )
    agent_states: bool = Field(default=False, description="Send default-state events.")
    send_all_agent_states: bool = Field(
        default=False, description="Send every state event, custom states included."
    )
    agent_login_events: bool = Field(default=False, description="Send LOGIN events.")
    agent_logout_events: bool = Field(default=False, description="Send LOGOUT events.")
    end_call_events: bool = Field(default=False, description="Send end-call events.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra request headers; values are secrets."
    )
    max_retries: int = Field(
        default=3, ge=0, le=MAX_RETRIES_LIMIT, description="Retries after the first attempt."
    )
    timeout_seconds: float = Field(
        default=10.0,
        ge=TIMEOUT_MIN,
        le=TIMEOUT_MAX,
        allow_inf_nan=False,
        description="Timeout of one webhook request, in seconds.",
    )

    @property
    def has_agent_url(self) -> bool:
        return self.agent_event_url is not None

    @property
    def has_call_url(self) -> bool:
        return self.call_event_url is not None

    @field_validator("account_id", mode="after")
    @classmethod
    def _check_account_id(cls, value: str) -> str:
        if not value:
            raise _Invalid("must not be empty")
        if len(value) > MAX_ACCOUNT_ID_LENGTH:
            raise _Invalid(f"must be at most {MAX_ACCOUNT_ID_LENGTH} characters")
        if not _ACCOUNT_ID.fullmatch(value):
            raise _Invalid("must not contain whitespace or control characters")
        return value

    @field_validator("agent_event_url", "call_event_url", mode="before")
    @classmethod
    def _validate_url(cls, value: Any) -> Any:
        if value == "":
            return None
        if type(value) is str:
            return _check_url(value)
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _check_headers(cls, value: Any) -> Any:
        if type(value) is dict:
            problems = _header_problems(value)
            if problems:
                raise _Invalid(*problems)
        return value

    @field_validator("max_retries", mode="before")
    @classmethod
    def _integral_float(cls, value: Any) -> Any:
        if type(value) is float and value.is_integer():
            return int(value)
        return value

    def url_for(self, kind: EventKind) -> str | None:
        """The URL events of ``kind`` go to, or None."""
        return self.agent_event_url if kind is EventKind.AGENT else self.call_event_url


_FIELD_NAMES: Final = frozenset(IntegrationConfig.model_fields)


def _type_message(field: str, error_type: str) -> str:
    if error_type in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if field == "max_retries":
        return f"must be an integer from 0 to {MAX_RETRIES_LIMIT}"
    if field == "timeout_seconds":
        return f"must be a number from {TIMEOUT_MIN} to {TIMEOUT_MAX}"
    if field in _URL_FIELDS:
        return "must be a string or null"
    if field == "headers":
        return "must be an object of header names to string values"
    if error_type == "string_type":
        return "must be a string"
    return "has an invalid value"


def _field_errors(error: ErrorDetails) -> list[FieldError]:
    """Our own text for one pydantic error; never its ``input``."""
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    error_type = error["type"]
    if error_type == "extra_forbidden":
        return [FieldError("", f"unknown field {_show(field)}")]
    if field not in _FIELD_NAMES:
        return [FieldError("", "invalid config")]
    if error_type == "missing":
        return [FieldError(field, "is required")]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _Invalid):
        return [FieldError(field, message) for message in cause.messages]
    if field == "headers" and len(loc) > 1:
        return [FieldError(field, f"the value of {_show(loc[1])} must be a string")]
    return [FieldError(field, _type_message(field, error_type))]


def validate_config(data: Any, key: str | None = None) -> IntegrationConfig:
    """Validate decoded JSON into an :class:`IntegrationConfig`.

    When ``key`` (the config record's key) is given, ``data["account_id"]``
    must equal it. Raises :class:`ConfigValidationError` and nothing else.
    """
    if type(data) is not dict:
        raise ConfigValidationError.single("", "the config must be a JSON object")
    errors: list[FieldError] = []
    account_id = data.get("account_id")
    if key is not None and type(account_id) is str and account_id != key:
        errors.append(FieldError("account_id", f"does not match the record key {_show(key)}"))
    try:
        config = IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            errors.extend(_field_errors(error))
        raise ConfigValidationError(errors) from None
    if errors:
        raise ConfigValidationError(errors)
    return config


def parse_config_record(key: bytes | None, value: bytes) -> IntegrationConfig:
    """Validate one (non-tombstone) record of the config topic.

    Raises :class:`ConfigValidationError` and nothing else.
    """
    if key is None:
        raise ConfigValidationError.single("", "the record has no key (it must be the account_id)")
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigValidationError.single("", "the record key is not UTF-8") from None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ConfigValidationError.single("", "the record value is not valid JSON") from None
    return validate_config(data, key_text)


def _as_dict(config: IntegrationConfig, header_value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in IntegrationConfig.model_fields:
        out[name] = getattr(config, name)
    out["headers"] = {name: header_value(secret) for name, secret in config.headers.items()}
    return out


def config_to_record_value(config: IntegrationConfig) -> bytes:
    """The config topic record value: JSON with every field, header values revealed."""
    return orjson.dumps(_as_dict(config, SecretStr.get_secret_value))


def config_to_public_dict(config: IntegrationConfig, show_secrets: bool = False) -> dict[str, Any]:
    """The config as a plain dict for display; header values are masked unless
    ``show_secrets``."""
    if show_secrets:
        return _as_dict(config, SecretStr.get_secret_value)
    return _as_dict(config, lambda _secret: MASK)
