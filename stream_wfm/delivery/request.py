"""Webhook requests (docs/contract.md §5), built from a template compiled once per integration.

:func:`compile_template` turns one integration config and one event kind into
a :class:`RequestTemplate`: URL, fixed headers (secrets revealed), format and
limits are worked out there, on config change. :meth:`RequestTemplate.build`
runs per event and only fills in the payload.

Payload: the docs/contract.md §2 fields of the event's kind, in that order, that the
event has, with the event's values.

* JSON (``send_body_as_json``): ``POST``, body = the payload as a JSON object.
* URL-encoded (default): ``POST`` with an empty body; the payload is
  form-encoded exactly as ``urllib.parse.urlencode`` does
  (:mod:`stream_wfm.delivery.form`) and appended to the configured URL's query with
  ``&`` (or after ``?`` when it has none).

Both take the event's fields from its :class:`~stream_wfm.delivery.payload.Plan`.

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
from typing import ClassVar, Final
from urllib.parse import urlsplit

import orjson

from stream_wfm import __version__
from stream_wfm.delivery.exceptions import UnformattableEventError
from stream_wfm.delivery.form import form_query
from stream_wfm.delivery.payload import Payload
from stream_wfm.events import (
    AGENT_LOGIN_FIELDS,
    AGENT_STATE_FIELDS,
    CALL_FIELDS,
    LOGIN,
    LOGOUT,
    Event,
    EventKind,
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
    "host_key_of",
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


# The payload of each field list, and the event kind they are chosen by as a module
# constant (in Python 3.11 ``EventKind.CALL`` runs a descriptor).
_CALL_PAYLOAD: Final = Payload(CALL_FIELDS)
_LOGIN_PAYLOAD: Final = Payload(AGENT_LOGIN_FIELDS)
_STATE_PAYLOAD: Final = Payload(AGENT_STATE_FIELDS)
_CALL: Final = EventKind.CALL


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
        # payload_fields(event), inline (once per event).
        if event.kind is _CALL:
            payload = _CALL_PAYLOAD
        elif event.event_type == LOGIN or event.event_type == LOGOUT:
            payload = _LOGIN_PAYLOAD
        else:
            payload = _STATE_PAYLOAD
        try:
            if self.as_json:
                body = orjson.dumps(payload.of(data))
                return self.make_request(
                    "POST", self.url, headers, body, self.timeout, self.host_key, event.event_id
                )
            query = form_query(data, payload.plan(data))
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
