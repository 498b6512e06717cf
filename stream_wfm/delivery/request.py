"""Webhook requests (docs/contract.md §5), built from a template compiled once per integration.

:func:`compile_template` turns one integration config and one event kind into
a :class:`RequestTemplate`: URL, fixed headers (secrets revealed), format and
limits are worked out there, on config change. :meth:`RequestTemplate.build`
runs per event and only fills in the payload.

Payload: the docs/contract.md §2 fields of the event's kind, in that order, that the
event has, with the event's values.

* JSON (``send_body_as_json``): ``POST``, body = the payload as a JSON object.
* URL-encoded (default): ``POST`` with an empty body; the payload is
  form-encoded exactly as ``urllib.parse.urlencode`` does (faster equivalents,
  :func:`form_encode` and the template's own, tested against it) and appended to
  the configured URL's query with ``&`` (or after ``?`` when it has none). Values: null → the
  empty string, strings as they are, booleans ``true``/``false``, numbers as
  Python prints them, objects and arrays as compact JSON.

Headers, in order: the configured headers, ``User-Agent`` (unless configured),
``Content-Type: application/json`` for JSON (unless configured), then
``X-WFM-Event-Id``, then the input record's W3C trace context when it has one
(:func:`trace_context`): ``traceparent`` and ``tracestate``. A configured header of
the same name wins: a configured ``traceparent`` leaves out both of the input's (its
``tracestate`` belongs to its ``traceparent``), a configured ``tracestate`` the input's
``tracestate``.

Signed webhooks (docs/contract.md §11): an integration with ``signing_secrets``
compiles to a signed template (:mod:`stream_wfm.delivery.signing`), whose requests the
transport stamps with their signature headers as it sends them
(:attr:`WebhookRequest.signed`, :meth:`WebhookRequest.signature_headers`). Unsigned
integrations build plain :class:`WebhookRequest` s exactly as before: signing costs them
one class attribute read in the transport.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, ClassVar, Final
from urllib.parse import quote_plus, urlsplit

import orjson

from stream_wfm import __version__
from stream_wfm.delivery.exceptions import UnformattableEventError
from stream_wfm.delivery.payload import Payload
from stream_wfm.events import (
    AGENT_LOGIN_FIELDS,
    AGENT_STATE_FIELDS,
    CALL_FIELDS,
    LOGIN,
    LOGOUT,
    Event,
    EventKind,
    payload_fields,
)
from stream_wfm.integrations.model import IntegrationConfig

__all__ = [
    "DEFAULT_USER_AGENT",
    "EVENT_ID_HEADER",
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "RequestTemplate",
    "TraceContext",
    "WebhookRequest",
    "compile_template",
    "form_encode",
    "form_quote",
    "host_key_of",
    "query_value",
    "redacted_url",
    "trace_context",
]

DEFAULT_USER_AGENT: Final = f"stream-wfm/{__version__}"
EVENT_ID_HEADER: Final = "X-WFM-Event-Id"
TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(slots=True, repr=False)
class WebhookRequest:
    """One HTTP request to send. ``host_key`` (``scheme://host:port``, lower
    case) identifies the destination for per-host limits.

    Its ``repr`` (and ``str``) shows no secret, as requests end up in log lines and
    tracebacks: the URL without user info, query or fragment (the query may hold a
    token and holds the payload), the header names without their values, and the
    body's size.

    Not frozen, though nothing changes one once built: a frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__``, ~2.5k instructions per request."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: float
    host_key: str
    event_id: str

    #: Whether the transport adds :meth:`signature_headers` after :attr:`headers` as it
    #: sends the request (a :class:`~stream_wfm.delivery.signing.SignedWebhookRequest`). A
    #: class attribute: a plain request pays nothing for signing but reading it.
    signed: ClassVar[bool] = False

    def __repr__(self) -> str:
        names = tuple(name for name, _ in self.headers)
        return (
            f"WebhookRequest(method={self.method!r}, url={redacted_url(self.url)!r}, "
            f"header_names={names!r}, body_bytes={len(self.body)}, timeout={self.timeout!r}, "
            f"event_id={self.event_id!r})"
        )

    def signature_headers(self, now: float | None = None) -> tuple[tuple[str, str], ...]:
        """The signature headers to send after :attr:`headers`, made at ``now`` (Unix
        seconds; default: the clock): none, as this request is not signed."""
        return ()

    def signature_block(self, now: float | None = None) -> bytes:
        """:meth:`signature_headers` as they go on the wire (``Name: value`` lines, Latin-1),
        for a transport that writes the bytes itself: none, as this request is not signed."""
        return b""

    def stamped(self, now: float | None = None) -> WebhookRequest:
        """The request with every header it is sent with (signature headers made at
        ``now``): this one, as it is not signed."""
        return self


def redacted_url(url: str) -> str:
    """``url`` for logs: scheme, host, port and path; user info, fragment and the
    query's content left out (``?...`` says there was one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def host_key_of(url: str) -> str:
    """``scheme://host:port`` of an http(s) URL, lower case, default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


# urlencode() quotes with quote_plus(safe=""): these characters stay, a space
# becomes "+", every other byte of the UTF-8 encoding becomes %XX. A regex
# finds the (many) values that need nothing; for ASCII text one str.translate
# does the rest; quoted values are cached, since dates, user names and queue
# names repeat across events.
_NEEDS_QUOTING: Final = re.compile(r"[^A-Za-z0-9_.\-~]").search
_ASCII_QUOTES: Final = {
    code: ("+" if code == 0x20 else f"%{code:02X}")
    for code in range(128)
    if _NEEDS_QUOTING(chr(code)) is not None
}
# For str.translate: every ASCII code, the safe ones mapped to themselves. A code the
# table lacks costs translate a KeyError raised and cleared inside, for each such
# character after the first one quoted: ~9k instructions for a date-time, ~5.5k without.
_ASCII_TABLE: Final = {code: _ASCII_QUOTES.get(code, code) for code in range(128)}
_QUOTE_CACHE: dict[str, str] = {}
_QUOTE_CACHE_SIZE: Final = 4096
_QUOTE_CACHE_MAX_LENGTH: Final = 128


def form_quote(text: str) -> str:
    """``urllib.parse.quote_plus(text, safe="")``, faster."""
    if _NEEDS_QUOTING(text) is None:
        return text
    quoted = _QUOTE_CACHE.get(text)
    if quoted is None:
        quoted = text.translate(_ASCII_TABLE) if text.isascii() else quote_plus(text, safe="")
        if len(text) <= _QUOTE_CACHE_MAX_LENGTH:
            if len(_QUOTE_CACHE) >= _QUOTE_CACHE_SIZE:
                _QUOTE_CACHE.clear()
            _QUOTE_CACHE[text] = quoted
    return quoted


def form_encode(pairs: Iterable[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode(pairs)`` for ``str`` names and values."""
    return "&".join([f"{form_quote(name)}={form_quote(value)}" for name, value in pairs])


#: ``name=`` as it starts each pair of the query, for every payload field name.
_PAIR_PREFIXES: Final = {
    name: form_quote(name) + "="
    for name in (*AGENT_LOGIN_FIELDS, *AGENT_STATE_FIELDS, *CALL_FIELDS)
}
_MISSING: Final = object()
#: The payload field names that need no quoting (all of them): a shape's parts hold none
#: of the characters its values' quoting replaces.
_PLAIN_NAMES: Final = frozenset(name for name in _PAIR_PREFIXES if _NEEDS_QUOTING(name) is None)

# The payload of each field list (JSON bodies), and the event kind they are chosen by as a
# module constant (in Python 3.11 ``EventKind.CALL`` runs a descriptor).
_CALL_PAYLOAD: Final = Payload(CALL_FIELDS)
_LOGIN_PAYLOAD: Final = Payload(AGENT_LOGIN_FIELDS)
_STATE_PAYLOAD: Final = Payload(AGENT_STATE_FIELDS)
_CALL: Final = EventKind.CALL


def query_value(value: Any) -> str:
    """A payload value as it goes into the query string (before percent-encoding)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    return orjson.dumps(value).decode()


# The query of an event whose values are all ASCII strings, in a few C calls per event
# rather than a few per field (docs/performance.md, 2026-12-07 second round). A shape,
# per field list and the event's keys in their order: an itemgetter for the fields the
# event has, and the query's parts, ``name=`` (after ``&``) with a place for each value.
# A copy of the parts gets the values by one slice assignment and is joined (~4k
# instructions for 14 values; % formatting, ~7k). The values go in raw, then each
# character that needs quoting is replaced across the whole query (one str.replace per
# distinct character, ~1.4k each): the names and the ``=`` and ``&`` between them hold
# none of those, so that is quote_plus of each value (``%`` first, as the others bring
# some, and space last, after ``+``). A value with ``&`` or ``=``, non-ASCII text or a
# value that is not a string takes the per-field way (:meth:`RequestTemplate._pairs`),
# as does an event of a shape the fast way does not fit (its shape has no itemgetter).
_Getter = Callable[[dict[str, Any]], tuple[str, ...]]
_Shape = tuple[tuple[str, ...], _Getter | None, list[str]]
_SHAPES: dict[tuple[Any, ...], _Shape] = {}
#: A shape's getter and parts by the fields present, for a shape not met before.
_SHAPES_BY_PRESENT: dict[tuple[str, ...], tuple[_Getter | None, list[str]]] = {}
_SHAPE_CACHE_SIZE: Final = 1024
#: Events with more keys than this take the per-field way (no key tuple to cache).
_SHAPE_MAX_KEYS: Final = 64
#: The bytes quote_plus leaves as they are: deleted, what is left needs quoting.
_SAFE_BYTES: Final = bytes(code for code in range(128) if code not in _ASCII_QUOTES)
#: Each other ASCII code but ``%``, space, ``&`` and ``=``: the character and its quoting.
_REPLACEMENTS: Final = {
    code: (chr(code), quoted) for code, quoted in _ASCII_QUOTES.items() if chr(code) not in "% &="
}
_PERCENT: Final = ord("%")
_SPACE: Final = ord(" ")
_AMPERSAND: Final = ord("&")
_EQUALS: Final = ord("=")


def _shape(data: dict[str, Any], fields: tuple[str, ...]) -> _Shape:
    """The shape of events with ``data``'s keys for ``fields``; without an itemgetter when
    the fast way does not fit: fewer than two fields present (an itemgetter of one gives
    no tuple) or a name that needs quoting. Its getter and parts are those of every shape
    with the same fields present, made once: events whose keys vary beyond the payload's
    (an extra key of their own, say) cost ~12k instructions more each, not ~34k."""
    present = tuple([name for name in fields if name in data])
    made = _SHAPES_BY_PRESENT.get(present)
    if made is None:
        if len(present) < 2 or not _PLAIN_NAMES.issuperset(present):
            made = None, []
        else:
            parts: list[str] = []
            for name in present:
                parts += ("&" + _PAIR_PREFIXES[name] if parts else _PAIR_PREFIXES[name], "")
            made = itemgetter(*present), parts
        if len(_SHAPES_BY_PRESENT) >= _SHAPE_CACHE_SIZE:
            _SHAPES_BY_PRESENT.clear()
        _SHAPES_BY_PRESENT[present] = made
    return fields, *made


#: The W3C trace context headers a request passes on: ``traceparent``, then ``tracestate``
#: when there is a sane one (see :func:`trace_context`).
TraceContext = tuple[tuple[str, str], ...]

# W3C Trace Context, version 00: lower-case hex, trace id and parent id not all zeros.
# Other versions are not read. A tracestate is passed on when it is 1 to 512 printable
# ASCII characters without leading or trailing spaces (its list syntax is not checked).
_TRACEPARENT: Final = re.compile(
    rb"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
).fullmatch
_TRACESTATE: Final = re.compile(rb"[!-~](?:[ -~]{0,510}[!-~])?").fullmatch


def trace_context(headers: Iterable[tuple[str, bytes | None]]) -> TraceContext | None:
    """The W3C trace context to pass on from an input record's Kafka ``headers``: its
    ``traceparent`` when valid (``00-<32 hex>-<16 hex>-<2 hex>``), with its ``tracestate``
    when sane; None when it has no valid ``traceparent``. Names are matched ignoring
    case; of a name given more than once the last counts."""
    parent: bytes | None = None
    state: bytes | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == TRACEPARENT_HEADER:
            parent = value
        elif lowered == TRACESTATE_HEADER:
            state = value
    if parent is None or _TRACEPARENT(parent) is None:
        return None
    traceparent = (TRACEPARENT_HEADER, parent.decode("ascii"))
    if state is None or _TRACESTATE(state) is None:
        return (traceparent,)
    return (traceparent, (TRACESTATE_HEADER, state.decode("ascii")))


class RequestTemplate:
    """Everything about a webhook request that does not depend on the event."""

    __slots__ = (
        "as_json",
        "headers",
        "host_key",
        "kind",
        "make_request",
        "query_prefix",
        "timeout",
        "trace_limit",
        "url",
    )

    #: What :meth:`build` makes its request with: :class:`WebhookRequest`, or a signed one
    #: (:class:`~stream_wfm.delivery.signing.SignedRequestTemplate`).
    make_request: Callable[
        [str, str, tuple[tuple[str, str], ...], bytes, float, str, str], WebhookRequest
    ]

    def __init__(
        self,
        kind: EventKind,
        url: str,
        headers: tuple[tuple[str, str], ...],
        as_json: bool,
        timeout: float,
    ) -> None:
        self.kind = kind
        self.url = url
        self.headers = headers
        self.as_json = as_json
        self.timeout = timeout
        self.host_key = host_key_of(url)
        self.make_request = WebhookRequest
        # How much of an event's trace context (traceparent, then tracestate) is sent:
        # none when traceparent is configured, only traceparent when tracestate is.
        names = {name.lower() for name, _ in headers}
        if TRACEPARENT_HEADER in names:
            self.trace_limit = 0
        else:
            self.trace_limit = 1 if TRACESTATE_HEADER in names else 2
        # What goes between the URL and the encoded payload.
        has_query = bool(urlsplit(url).query)
        if url.endswith("?") or (has_query and url.endswith("&")):
            self.query_prefix = url
        elif has_query:
            self.query_prefix = url + "&"
        else:
            self.query_prefix = url + "?"

    def __repr__(self) -> str:  # never show header values
        names = [name for name, _ in self.headers]
        return f"RequestTemplate(kind={self.kind!s}, url={self.url!r}, header_names={names!r})"

    def build(self, event: Event, trace: TraceContext | None = None) -> WebhookRequest:
        """The request for ``event``, with the input record's ``trace`` context
        (:func:`trace_context`) after ``X-WFM-Event-Id`` unless the config sets those
        headers; raises :class:`~stream_wfm.delivery.exceptions.UnformattableEventError`
        when a value cannot be encoded."""
        data = event.data
        # A concatenation: ~0.35k instructions fewer than unpacking into a new tuple.
        headers = self.headers + ((EVENT_ID_HEADER, event.event_id),)  # noqa: RUF005
        if trace is not None:
            headers += trace[: self.trace_limit]
        try:
            if self.as_json:
                # payload_fields(event), inline (once per event).
                if event.kind is _CALL:
                    payload = _CALL_PAYLOAD
                elif event.event_type == LOGIN or event.event_type == LOGOUT:
                    payload = _LOGIN_PAYLOAD
                else:
                    payload = _STATE_PAYLOAD
                body = orjson.dumps(payload.of(data))
                return self.make_request(
                    "POST", self.url, headers, body, self.timeout, self.host_key, event.event_id
                )
            query = self._query(data, payload_fields(event))
        except orjson.JSONEncodeError as exc:
            raise UnformattableEventError(f"a payload value cannot be encoded ({exc})") from None
        # The payload is never empty: account_id and event_type are in every list.
        return self.make_request(
            "POST",
            self.query_prefix + query,
            headers,
            b"",
            self.timeout,
            self.host_key,
            event.event_id,
        )

    @staticmethod
    def _query(data: dict[str, Any], fields: tuple[str, ...]) -> str:
        """The form-encoded payload: by the event's shape when its values are ASCII
        strings without ``&`` or ``=`` (see ``_SHAPES``), else :meth:`_pairs` joined."""
        if len(data) <= _SHAPE_MAX_KEYS:
            key = (id(fields), *data)
            shape = _SHAPES.get(key)
            if shape is None or shape[0] is not fields:  # (an id reused: another list)
                if len(_SHAPES) >= _SHAPE_CACHE_SIZE:
                    _SHAPES.clear()
                shape = _SHAPES[key] = _shape(data, fields)
            getter = shape[1]
            if getter is not None:
                values = getter(data)
                try:
                    joined = "".join(values)
                except TypeError:  # a value that is not a string
                    return "&".join(RequestTemplate._pairs(data, fields))
                if joined.isascii():
                    parts = shape[2].copy()
                    parts[1::2] = values
                    query = "".join(parts)
                    unsafe = joined.encode().translate(None, _SAFE_BYTES)
                    if not unsafe:
                        return query
                    found = set(unsafe)
                    if _AMPERSAND not in found and _EQUALS not in found:
                        if _PERCENT in found:
                            query = query.replace("%", "%25")
                        for code in found:
                            replacement = _REPLACEMENTS.get(code)
                            if replacement is not None:
                                query = query.replace(*replacement)
                        if _SPACE in found:
                            query = query.replace(" ", "+")
                        return query
        return "&".join(RequestTemplate._pairs(data, fields))

    @staticmethod
    def _pairs(data: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
        """``name=value`` for each field the event has: :func:`form_quote` of
        :func:`query_value`, with their common cases (a string that needs no quoting)
        inline, as this runs for every field of the URL-encoded events that
        :meth:`_query` does not encode its fast way."""
        pairs = []
        for name in fields:
            value = data.get(name, _MISSING)
            if value is _MISSING:
                continue
            text = value if type(value) is str else query_value(value)
            if _NEEDS_QUOTING(text) is not None:
                text = form_quote(text)
            pairs.append(_PAIR_PREFIXES[name] + text)
        return pairs


def compile_template(
    cfg: IntegrationConfig, kind: EventKind, user_agent: str = DEFAULT_USER_AGENT
) -> RequestTemplate | None:
    """The template for events of ``kind`` under ``cfg``; None when ``cfg`` has
    no URL for that kind. With ``signing_secrets``, a signed one
    (:func:`~stream_wfm.delivery.signing.signed_template`)."""
    url = cfg.url_for(kind)
    if url is None:
        return None
    headers = [(name, secret.get_secret_value()) for name, secret in cfg.headers.items()]
    configured = {name.lower() for name, _ in headers}
    if "user-agent" not in configured:
        headers.append(("User-Agent", user_agent))
    if cfg.send_body_as_json and "content-type" not in configured:
        headers.append(("Content-Type", "application/json"))
    as_json = cfg.send_body_as_json
    if not cfg.signing_secrets:
        return RequestTemplate(kind, url, tuple(headers), as_json, cfg.timeout_seconds)
    # Imported here: the signed template builds on this module's (once per config and kind).
    from stream_wfm.delivery.signing import signed_template

    secrets = cfg.signing_secrets
    return signed_template(kind, url, tuple(headers), as_json, cfg.timeout_seconds, secrets)
