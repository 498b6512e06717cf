"""Signed webhooks (Standard Webhooks; docs/contract.md §11): the signed kind of request
template and request, and their :class:`Signer`.

:func:`~stream_wfm.delivery.request.compile_template` compiles an integration with
``signing_secrets`` with :func:`signed_template`: its keys are decoded and keyed into
HMAC-SHA256 there, once per config and event kind. The template builds
:class:`SignedWebhookRequest` s; a transport stamps one as it sends it
(:attr:`~stream_wfm.delivery.request.WebhookRequest.signed`,
:meth:`~stream_wfm.delivery.request.WebhookRequest.signature_headers`), after every
other header: ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds, then)
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` per secret, newest first,
space-separated) over ``{id}.{timestamp}.{content}``, the content being the JSON body
or, URL-encoded, the query after ``?``. A signed URL-encoded template sends its URL's own
query with the characters HTTP clients escape differently (non-ASCII, ``"``, ``'``,
``<``, ``>``...) percent-encoded, so that every transport sends the query that was
signed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from binascii import b2a_base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Final
from urllib.parse import quote

from pydantic import SecretStr

from stream_wfm.delivery.exceptions import UnencodableRequestError
from stream_wfm.delivery.request import RequestTemplate, WebhookRequest
from stream_wfm.events import EventKind
from stream_wfm.integrations.signing import SIGNATURE_HEADER_NAMES, signing_key

__all__ = [
    "WEBHOOK_ID_HEADER",
    "WEBHOOK_SIGNATURE_HEADER",
    "WEBHOOK_TIMESTAMP_HEADER",
    "SignedRequestTemplate",
    "SignedWebhookRequest",
    "Signer",
    "signed_template",
]

WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER = SIGNATURE_HEADER_NAMES


_ID_LINE, _TIMESTAMP_LINE, _SIGNATURE_LINE = (
    f"{name}: ".encode() for name in SIGNATURE_HEADER_NAMES
)


class Signer:
    """The Standard Webhooks signatures of one template's requests, with the HMAC keys of
    its integration's secrets, newest first. ``query_start``: where the signed query starts
    in a URL-encoded request's URL (None: JSON, the body is signed).

    Each key's HMAC-SHA256 is keyed here, once; a signature copies it (cheaper than keying
    it again per request: ~1.3 µs instead of ~1.75 µs for a 450-byte body). The copies are
    of OpenSSL's HMAC object under :mod:`hmac`'s wrapper when it has one (it has the same
    ``copy``, ``update`` and ``digest``): no Python frame per call. The timestamp's text is
    kept for the second it stands for."""

    __slots__ = ("_macs", "_query_start", "_second", "_timestamp")

    def __init__(self, keys: tuple[bytes, ...], query_start: int | None) -> None:
        macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]
        self._macs: tuple[Any, ...] = tuple(getattr(mac, "_hmac", None) or mac for mac in macs)
        self._query_start = query_start
        self._second = -1
        self._timestamp = b""

    def __repr__(self) -> str:  # never the keys
        return f"Signer(secrets={len(self._macs)})"

    def _sign(self, request: WebhookRequest, now: float | None) -> tuple[bytes, bytes]:
        """The timestamp (``now``, default the clock, in whole seconds) and the signature
        of ``request``, as ASCII."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._timestamp = b"%d" % second
            self._second = second
        timestamp = self._timestamp
        start = self._query_start
        content = request.body if start is None else request.url[start:].encode()
        message = b"%s.%s.%s" % (request.event_id.encode(), timestamp, content)
        signatures = []
        for keyed in self._macs:
            mac = keyed.copy()
            mac.update(message)
            signatures.append(b"v1," + b2a_base64(mac.digest(), newline=False))
        signature = signatures[0] if len(signatures) == 1 else b" ".join(signatures)
        return timestamp, signature

    def headers(
        self, request: WebhookRequest, now: float | None = None
    ) -> tuple[tuple[str, str], ...]:
        """``webhook-id``, ``webhook-timestamp`` (``now``, default the clock, in whole
        seconds) and ``webhook-signature`` of ``request``."""
        timestamp, signature = self._sign(request, now)
        return (
            (WEBHOOK_ID_HEADER, request.event_id),
            (WEBHOOK_TIMESTAMP_HEADER, timestamp.decode()),
            (WEBHOOK_SIGNATURE_HEADER, signature.decode()),
        )

    def block(self, request: WebhookRequest, now: float | None = None) -> bytes:
        """:meth:`headers` as they go on the wire: ``Name: value`` lines in Latin-1;
        raises :class:`UnencodableRequestError` for an event id with CR or LF or that is
        not Latin-1 text (as any header would)."""
        timestamp, signature = self._sign(request, now)
        text = request.event_id
        # (On str: ``in`` on bytes first tries its operand as an int, an exception.)
        if "\r" in text or "\n" in text:
            raise UnencodableRequestError("a header name or value contains CR or LF")
        try:
            event_id = text.encode("latin-1")
        except UnicodeEncodeError:
            raise UnencodableRequestError("a header is not Latin-1 text") from None
        return b"".join(
            (
                _ID_LINE, event_id, b"\r\n", _TIMESTAMP_LINE, timestamp, b"\r\n",
                _SIGNATURE_LINE, signature, b"\r\n",
            )
        )  # fmt: skip


@dataclass(slots=True, repr=False)
class SignedWebhookRequest(WebhookRequest):
    """A request of a signed integration: the transport stamps it with its signature
    headers when it sends it (so ``webhook-timestamp`` is the time it is sent, not built)."""

    signer: Signer
    signed: ClassVar[bool] = True

    def signature_headers(self, now: float | None = None) -> tuple[tuple[str, str], ...]:
        return self.signer.headers(self, now)

    def signature_block(self, now: float | None = None) -> bytes:
        return self.signer.block(self, now)

    def stamped(self, now: float | None = None) -> WebhookRequest:
        headers = self.headers + self.signer.headers(self, now)
        return WebhookRequest(
            self.method, self.url, headers, self.body, self.timeout, self.host_key, self.event_id
        )


class SignedRequestTemplate(RequestTemplate):
    """The template of a signed integration: it builds :class:`SignedWebhookRequest` s."""

    __slots__ = ("signer",)

    def __init__(
        self,
        kind: EventKind,
        url: str,
        headers: tuple[tuple[str, str], ...],
        as_json: bool,
        timeout: float,
        keys: tuple[bytes, ...],
    ) -> None:
        super().__init__(kind, url, headers, as_json, timeout)
        # URL-encoded: the query, the URL's own and the payload, starts after the first "?".
        self.signer = Signer(keys, None if as_json else self.query_prefix.index("?") + 1)
        self.make_request = partial(SignedWebhookRequest, signer=self.signer)


#: What a signed query keeps as it is: characters every transport sends unchanged (h1's
#: request-target safe set, less ``'``, which reqwest's URL parser escapes in a query).
_SIGNED_QUERY_SAFE: Final = "/?&=%:@!$()*+,;~[]-._"


def _signable_url(url: str) -> str:
    """``url`` with its query's other characters percent-encoded (as UTF-8)."""
    base, mark, query = url.partition("?")
    return base + mark + quote(query, safe=_SIGNED_QUERY_SAFE) if mark else url


def signed_template(
    kind: EventKind,
    url: str,
    headers: tuple[tuple[str, str], ...],
    as_json: bool,
    timeout: float,
    secrets: Sequence[SecretStr],
) -> SignedRequestTemplate:
    """The template of an integration signing with ``secrets`` (newest first)."""
    keys = tuple(signing_key(secret.get_secret_value()) for secret in secrets)
    if not as_json:
        url = _signable_url(url)
    return SignedRequestTemplate(kind, url, headers, as_json, timeout, keys)
