"""The integration config of one account (docs/contract.md §3) and its validation.

One function validates a config for every writer and reader: the config
store, ``stream-wfm config put|validate`` and the console all call
:func:`validate_config` (or :func:`parse_config_record` for raw records).

Rules beyond the field types and ranges of docs/contract.md §3:

* ``account_id``: 1 to 64 characters, all printable (``str.isprintable``) and
  none a space: no whitespace, control characters, invisible formatting
  characters (bidi controls, zero-width characters, BOM), line or paragraph
  separators, surrogates, private-use or unassigned code points.
* URLs (``agent_event_url``, ``call_event_url``): absolute ``http`` or
  ``https`` URLs whose host has an ASCII form (:func:`stream_wfm.hostnames.ascii_host`:
  IDNA 2008 with UTS #46; labels of letters, digits, ``-`` and ``_``, 1 to 63
  characters), at most 2048 characters, no whitespace or
  control characters, a valid port if any. A URL with a user name or
  password (``https://user:pw@host``) is refused: URLs show up in logs and
  on the console, credentials belong in a header. A URL with a fragment
  (``#...``) is refused rather than silently cut. Nothing is stripped or
  normalised. The empty string means null (web forms post empty fields).
* ``headers``: at most 50; names are RFC 7230 tokens of at most 256
  characters, unique ignoring case; values are at most 8192 characters of
  printable ASCII, space and tab (so no CR, LF or other control character).
  ``Host``, ``Content-Length``, ``Transfer-Encoding`` and ``Connection``
  (docs/contract.md §3), ``X-WFM-Event-Id`` (the service sets it from the event) and the
  Standard Webhooks headers ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature`` (signed or not: a receiver must never see a signature the
  service did not make) cannot be set. ``User-Agent`` and ``Content-Type`` may be set: a
  configured one replaces the service's own.
* ``signing_secrets`` (signed webhooks, docs/contract.md §11): a list of at most 3,
  newest first, each ``whsec_`` and the standard base64 (padded, in its one canonical
  spelling) of 24 to 64 bytes, none twice (:mod:`stream_wfm.integrations.signing`).
  Null means none, as an empty list does; the record is written with ``[]``.
* Booleans must be JSON booleans and numbers JSON numbers (no ``"true"`` or
  ``"3"``); ``max_retries`` accepts an integral float such as ``3.0``, as JSON
  Schema's ``integer`` does. A number of any size (thousands of digits), or a
  numeric string in any script, is a field error, never another exception.
* JSON text (``config put|validate`` input, config records;
  :func:`decode_config_json`): a key given twice in one object, at any depth,
  is refused, naming its path (decoders would keep the last one silently).
  A number beyond a double (``1e400``, 309+ digits) is decoded as infinity, so
  its field gets the error rather than "not valid JSON".

Header values and signing secrets are :class:`~pydantic.SecretStr`: they never show in
``repr``, in logs or in validation messages, which name the header or the secret's
position but never its value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from stream_wfm.events import EventKind
from stream_wfm.hostnames import InvalidHostError, ascii_host
from stream_wfm.integrations.exceptions import ConfigValidationError, FieldError
from stream_wfm.integrations.signing import SIGNATURE_HEADER_NAMES, signing_secret_problems

__all__ = [
    "FORBIDDEN_HEADER_NAMES",
    "MASK",
    "ConfigValidationError",
    "FieldError",
    "IntegrationConfig",
    "config_to_public_dict",
    "config_to_record_value",
    "decode_config_json",
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
    | set(SIGNATURE_HEADER_NAMES)
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t -~]*")
_URL_BAD_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_URL_FIELDS = ("agent_event_url", "call_event_url")
_NOT_URL = "must be an absolute http or https URL"
_ISO_UTC = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|\+00:00)"
)


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
        ascii_host(parts.hostname)  # the name DNS, Host and SNI get (IDNA 2008, UTS #46)
    except InvalidHostError as exc:
        raise _Invalid(f"has an invalid host name ({exc})") from None
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
    signing_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Standard Webhooks signing secrets, newest first (at most 3); "
        "empty: requests are not signed.",
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
    disabled_reason: Literal["endpoint_failing"] | None = Field(
        default=None,
        description="Set (with enabled: false) when the service disabled the integration "
        "because its endpoint kept failing; its events are then dead-lettered as "
        "endpoint_disabled until it is re-enabled.",
    )
    disabled_at: str | None = Field(
        default=None,
        description="When the service disabled the integration (ISO-8601 UTC).",
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
        # isprintable(): no character of the Unicode categories C* (Cc control, Cf format
        # such as bidi controls and zero-width characters, Cs surrogates, Co private use,
        # Cn unassigned) or Z* (Zs spaces, Zl/Zp line and paragraph separators), except
        # the ASCII space, which is refused on its own.
        if not value.isprintable() or " " in value:
            raise _Invalid(
                "must not contain whitespace, control or invisible formatting characters "
                "(such as bidi controls or zero-width characters)"
            )
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

    @field_validator("signing_secrets", mode="before")
    @classmethod
    def _check_signing_secrets(cls, value: Any) -> Any:
        if value is None:
            return []
        problems = signing_secret_problems(value)
        if problems:
            raise _Invalid(*problems)
        return value

    @field_validator("max_retries", mode="before")
    @classmethod
    def _integral_float(cls, value: Any) -> Any:
        if type(value) is float and value.is_integer():
            return int(value)
        return value

    @field_validator("disabled_at", mode="after")
    @classmethod
    def _check_disabled_at(cls, value: str | None) -> str | None:
        if value is not None and not _ISO_UTC.fullmatch(value):
            raise _Invalid("must be an ISO-8601 UTC time such as 2026-12-07T10:00:00Z")
        return value

    @model_validator(mode="after")
    def _disabled_reason_only_when_disabled(self) -> Self:
        if self.enabled and self.disabled_reason is not None:
            raise _Invalid("disabled_reason is set but the integration is enabled")
        if self.disabled_at is not None and self.disabled_reason is None:
            raise _Invalid("disabled_at is set without a disabled_reason")
        return self

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
    if field == "signing_secrets":
        return "must be a list of secrets (strings), or null"
    if field == "disabled_reason":
        return 'must be "endpoint_failing" or null'
    if field == "disabled_at":
        return "must be a string or null"
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
    cause = error.get("ctx", {}).get("error")
    if not loc and isinstance(cause, _Invalid):  # a rule across fields (model validator)
        return [FieldError("", message) for message in cause.messages]
    if field not in _FIELD_NAMES:
        return [FieldError("", "invalid config")]
    if error_type == "missing":
        return [FieldError(field, "is required")]
    if isinstance(cause, _Invalid):
        return [FieldError(field, message) for message in cause.messages]
    if field == "headers" and len(loc) > 1:
        return [FieldError(field, f"the value of {_show(loc[1])} must be a string")]
    return [FieldError(field, _type_message(field, error_type))]


def validate_config(
    data: Any, key: str | None = None, duplicates: Sequence[FieldError] = ()
) -> IntegrationConfig:
    """Validate decoded JSON into an :class:`IntegrationConfig`.

    When ``key`` (the config record's key) is given, ``data["account_id"]``
    must equal it. ``duplicates``: the duplicate-key errors
    :func:`decode_config_json` found in the text ``data`` was decoded from; they
    make the config invalid and come first. Raises :class:`ConfigValidationError`
    and nothing else.
    """
    errors: list[FieldError] = list(duplicates)
    if type(data) is not dict:
        errors.append(FieldError("", "the config must be a JSON object"))
        raise ConfigValidationError(errors)
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
        data, duplicates = decode_config_json(value)
    except ValueError:
        raise ConfigValidationError.single("", "the record value is not valid JSON") from None
    return validate_config(data, key_text, duplicates)


# --- JSON text ------------------------------------------------------------------------

#: Where an object key ends: its closing quote, optional whitespace, the colon. Every
#: key of a JSON text ends so, once; a string may hold the same characters too
#: (``"a\":b"``), so the number of matches is at least the number of keys.
_KEY_END: Final = re.compile(rb'"[ \t\n\r]*:')
#: Keys shown as they are in a key path; others are shown JSON-quoted, non-ASCII escaped.
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_\-]{1,64}")
#: Longer integers are decoded as floats (as orjson does beyond 64 bits), never by
#: ``int()``, which refuses more than 4300 digits; shorter ones fit 64 bits.
_INT_DIGITS: Final = 18
_MAX_DUPLICATES_SHOWN: Final = 10
_MAX_PATH_SHOWN: Final = 200

_Path = tuple["_Path", str | int] | None  # a key path as links to the parent's path


def _key_count(data: Any) -> int:
    """The number of object keys in decoded JSON, at any depth (no recursion)."""
    count = 0
    stack = [data]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            count += len(value)
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
    return count


def _key_path(path: _Path) -> str:
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    text = ""
    for step in reversed(steps):
        if type(step) is int:
            text += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(str(step)):
            text += f".{step}" if text else str(step)
        else:
            text += f"[{json.dumps(str(step)[:64])}]"
        if len(text) > _MAX_PATH_SHOWN:
            return text[:_MAX_PATH_SHOWN] + "..."
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _StdlibDecoder:
    """Python's :mod:`json` as a second reader of a text: it shows which keys an
    object gives more than once, and decodes a number beyond a double as infinity
    where orjson refuses the whole text."""

    def __init__(self) -> None:
        # id(object) → (the object, the keys it repeats). The object is kept so that its
        # id is not reused while decoding: a later value's key overwrites an earlier one
        # (``{"a": {"b": 1, "b": 2}, "a": 1}``), freeing it, and a new object may get its id.
        self.repeated: dict[int, tuple[dict[str, Any], list[str]]] = {}
        self.overflow = False

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            repeated: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in repeated:
                    repeated.append(key)
                seen.add(key)
            self.repeated[id(obj)] = (obj, repeated)
        return obj

    def _float(self, text: str) -> float:
        number = float(text)
        if math.isinf(number):
            self.overflow = True
        return number

    def _int(self, text: str) -> int | float:
        return int(text) if len(text) <= _INT_DIGITS else self._float(text)

    def decode(self, raw: bytes) -> Any:
        """Raises ValueError (not JSON, NaN, Infinity) or RecursionError (nested too deeply)."""
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=self._object,
            parse_int=self._int,
            parse_float=self._float,
            parse_constant=_refuse_constant,
        )

    def duplicates(self, data: Any) -> list[FieldError]:
        """The errors of the repeated keys of ``data`` (decoded by :meth:`decode`)."""
        errors: list[FieldError] = []
        # (value, its path, the config field it is in or under: "" for none)
        stack: list[tuple[Any, _Path, str]] = [(data, None, "")]
        while stack:
            value, path, field = stack.pop()
            if type(value) is dict:
                kept = self.repeated.get(id(value))
                for key in kept[1] if kept is not None and kept[0] is value else ():
                    in_field = key if path is None and key in _FIELD_NAMES else field
                    message = f"duplicate JSON key {_key_path((path, key))}"
                    errors.append(FieldError(in_field, message))
                stack.extend(
                    (child, (path, key), key if path is None and key in _FIELD_NAMES else field)
                    for key, child in reversed(value.items())
                )
            elif type(value) is list:
                stack.extend(
                    (child, (path, index), field)
                    for index, child in reversed(list(enumerate(value)))
                )
        if len(errors) > _MAX_DUPLICATES_SHOWN:
            more = len(errors) - _MAX_DUPLICATES_SHOWN
            errors = [
                *errors[:_MAX_DUPLICATES_SHOWN],
                FieldError("", f"{more} more duplicate keys"),
            ]
        return errors


def decode_config_json(raw: bytes) -> tuple[Any, list[FieldError]]:
    """Decode a config document from JSON text (``config put|validate`` input, a config
    record's value): the value, and an error for every key an object gives more than
    once, at any depth, naming its path (decoders silently keep the last one).

    A number beyond a double (thousands of digits, ``1e400``) is decoded as infinity
    rather than refusing the text, so that its field gets the error; no field accepts
    it. Raises :class:`ValueError` when ``raw`` is not JSON (orjson's
    ``JSONDecodeError``), and nothing else.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Refused only for a number beyond a double? Then decode it as infinity. Anything
        # else orjson refuses (a lone surrogate...) stays refused: orjson must write it.
        decoder = _StdlibDecoder()
        try:
            data = decoder.decode(raw)
            orjson.dumps(data)
        except (ValueError, TypeError, RecursionError):  # TypeError: orjson.JSONEncodeError
            decoder.overflow = False
        if not decoder.overflow:
            raise
        return data, decoder.duplicates(data)
    # orjson keeps the last of repeated keys. When the text has no more key ends than
    # the decoded value has keys, there was none; otherwise (a repeated key, or a string
    # holding '":') json, slower, tells.
    if len(_KEY_END.findall(raw)) <= _key_count(data):
        return data, []
    decoder = _StdlibDecoder()
    try:
        checked = decoder.decode(raw)
    except (ValueError, RecursionError):  # json nests less deeply than orjson (1024 levels)
        return data, [FieldError("", "the JSON is nested too deeply to check for duplicate keys")]
    return data, decoder.duplicates(checked)


def _as_dict(config: IntegrationConfig, secret_value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in IntegrationConfig.model_fields:
        out[name] = getattr(config, name)
    out["headers"] = {name: secret_value(secret) for name, secret in config.headers.items()}
    out["signing_secrets"] = [secret_value(secret) for secret in config.signing_secrets]
    return out


def config_to_record_value(config: IntegrationConfig) -> bytes:
    """The config topic record value: JSON with every field, header values and signing
    secrets revealed (the record is where they are kept)."""
    return orjson.dumps(_as_dict(config, SecretStr.get_secret_value))


def config_to_public_dict(config: IntegrationConfig, show_secrets: bool = False) -> dict[str, Any]:
    """The config as a plain dict for display; header values and signing secrets are
    masked (one mask per secret, so their number shows) unless ``show_secrets``."""
    if show_secrets:
        return _as_dict(config, SecretStr.get_secret_value)
    return _as_dict(config, lambda _secret: MASK)
