"""HTTP/1.1 request bytes for the h1 transport (:mod:`stream_wfm.delivery.h1_transport`).

Pure functions: the request target of a URL, the ``Host`` value of a destination, and
the request on the wire, with header names in order and as spelled. A header that
would carry CR or LF (request smuggling) or text that is not Latin-1 raises
:class:`~stream_wfm.delivery.exceptions.UnencodableRequestError`; config validation
already refuses both. And :class:`HeaderBlocks`, the cache of encoded header blocks.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from stream_wfm.delivery.exceptions import UnencodableRequestError
from stream_wfm.delivery.request import WebhookRequest
from stream_wfm.hostnames import ascii_host

__all__ = [
    "HEADER_BLOCK_CACHE_BYTES",
    "HEADER_BLOCK_CACHE_SIZE",
    "REQUEST_LINE_CACHE_SIZE",
    "HeaderBlocks",
    "RequestLines",
    "encode_headers",
    "encode_request",
    "host_header",
    "request_target",
]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Characters left as they are when a non-ASCII request target is percent-encoded.
_TARGET_SAFE: Final = "/?&=%:@!$'()*+,;~[]-._"


def host_header(scheme: str, host: str, port: int) -> str:
    """The ``Host`` value for ``host`` (no brackets) and ``port``: the port only when it
    is not the scheme's default, IPv6 in brackets, a name in its ASCII form
    (:func:`~stream_wfm.hostnames.ascii_host`, which raises a ``ValueError`` for a name
    with none)."""
    name = ascii_host(host)
    bracketed = f"[{name}]" if ":" in name else name
    return bracketed if port == _DEFAULT_PORTS.get(scheme) else f"{bracketed}:{port}"


def request_target(url: str) -> str:
    """The origin-form request target (path and query) of an absolute http(s) URL."""
    start = url.find("://") + 3
    end = len(url)
    for mark in "/?":
        at = url.find(mark, start)
        if 0 <= at < end:
            end = at
    target = url[end:]
    if not target.startswith("/"):
        target = "/" + target
    if not target.isascii():
        target = quote(target, safe=_TARGET_SAFE)
    return target


def encode_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    """``Name: value`` lines, in order and as spelled; raises
    :class:`UnencodableRequestError` for CR or LF in a name or value (request smuggling,
    which config validation should have refused) or text that is not Latin-1."""
    if len(headers) == 1:  # the usual rest of a request after its cached block
        name, value = headers[0]
        if value.isascii() and value.isprintable() and name.isascii() and name.isprintable():
            # Printable ASCII holds no CR or LF and is Latin-1: the checks below are not
            # needed (3.6k -> 1.6k instructions for an X-WFM-Event-Id header).
            return f"{name}: {value}\r\n".encode()
        block = f"{name}: {value}\r\n"
    else:
        block = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # Every header adds exactly one CR and one LF: any other count means one carries some.
    if block.count("\n") != len(headers) or block.count("\r") != len(headers):
        raise UnencodableRequestError("a header name or value contains CR or LF")
    try:
        return block.encode("latin-1")
    except UnicodeEncodeError:
        raise UnencodableRequestError("a header is not Latin-1 text") from None


#: Most headers of a request come from its integration's template and repeat; the last
#: (``X-WFM-Event-Id``) does not. Encoded blocks are kept up to this many templates...
HEADER_BLOCK_CACHE_SIZE: Final = 4096
#: ... and up to this many bytes (a template's headers can take ~410 KB: 50 of 8 KiB).
HEADER_BLOCK_CACHE_BYTES: Final = 4 * 1024 * 1024


class HeaderBlocks(dict[tuple[tuple[str, str], ...], bytes]):
    """Encoded header blocks by the headers they encode, at most
    :data:`HEADER_BLOCK_CACHE_SIZE` of them and :data:`HEADER_BLOCK_CACHE_BYTES` bytes:
    one more empties it (templates that repeat are soon back in)."""

    size = 0  # bytes of the blocks held

    def add(self, headers: tuple[tuple[str, str], ...], block: bytes) -> None:
        if (
            len(self) >= HEADER_BLOCK_CACHE_SIZE
            or self.size + len(block) > HEADER_BLOCK_CACHE_BYTES
        ):
            self.clear()
            self.size = 0
        if len(block) <= HEADER_BLOCK_CACHE_BYTES:
            self[headers] = block
            self.size += len(block)


#: Request lines (with ``Host``) kept per destination, up to this many entries. By URL:
#: the key is the URL string's identity (the one kept with it), as a template sends every
#: JSON request with its own URL string, and no hashing is needed. And by what comes
#: before the URL's ``?``: a URL-encoded request's URL is its template's URL and a query
#: that carries the payload, a new string each time, never repeated. Its line is the
#: cached start (``POST`` and the path) and end (``HTTP/1.1`` and ``Host``) around the
#: query's bytes, and is not kept (it would only push out the lines that repeat). Two
#: entries per template with a query: twice the 64 templates per destination of before.
REQUEST_LINE_CACHE_SIZE: Final = 128
RequestLines = dict[int | str, tuple[str, bytes, bytes]]
#: The ``Content-Length`` line and the blank line after it, by body length (bounded).
_CONTENT_LENGTHS: dict[int, bytes] = {}
_CONTENT_LENGTH_CACHE_SIZE: Final = 4096
#: Headers a request may carry after ``X-WFM-Event-Id`` (its trace context): the
#: cached block ends before them, so that it still repeats for traced events.
_AFTER_EVENT_ID: Final = frozenset(("traceparent", "tracestate"))


def _request_line(method: str, url: str, host_header: str) -> bytes:
    line = f"{method} {request_target(url)} HTTP/1.1\r\nHost: {host_header}\r\n"
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        raise UnencodableRequestError("the host is not Latin-1 text") from None


def _new_post_line(url: str, host_header: str, lines: RequestLines) -> bytes:
    """The line of a ``POST`` to ``url``, made and cached: by ``url`` and, when ``url`` is
    ASCII with a query, its start and end by what comes before the ``?`` (for the next
    URLs of its template, see :func:`encode_request`)."""
    line = _request_line("POST", url, host_header)
    if len(lines) >= REQUEST_LINE_CACHE_SIZE - 1:
        lines.clear()
    lines[id(url)] = (url, line, b"")
    # An ASCII URL with the scheme's "://" before its first "?": its request target is
    # the part before the "?" made a target (unquoted, as ASCII), then the query as it is,
    # which any other ASCII query after the same part would be too.
    at = url.find("?")
    if at >= 0 and url.isascii() and "://" in url[:at]:
        before = url[:at]
        start = len(line) - len(url) + at - len(host_header) - len(" HTTP/1.1\r\nHost: \r\n")
        lines[before] = (before, line[:start], line[start + len(url) - at :])
    return line


def _content_length(size: int) -> bytes:
    line = _CONTENT_LENGTHS.get(size)
    if line is None:
        if len(_CONTENT_LENGTHS) >= _CONTENT_LENGTH_CACHE_SIZE:
            _CONTENT_LENGTHS.clear()
        line = _CONTENT_LENGTHS[size] = b"Content-Length: %d\r\n\r\n" % size
    return line


def encode_request(
    request: WebhookRequest,
    host_header: str,
    blocks: HeaderBlocks | None = None,
    lines: RequestLines | None = None,
) -> bytes:
    """The request's bytes on the wire: request line, ``Host``, the request's headers in
    order and as spelled, a signed request's signature headers (made now, as it is about
    to be written), ``Content-Length``, the body. ``blocks`` caches the encoding of all
    headers but the last of :attr:`~WebhookRequest.headers` (but the last that are not
    the trace context); ``lines`` caches the request lines of ``POST`` requests to
    ``host_header``'s destination by URL, and their start and end by what comes before
    the query (at most :data:`REQUEST_LINE_CACHE_SIZE` entries)."""
    headers = request.headers
    split = len(headers) - 1
    while split > 0 and headers[split][0] in _AFTER_EVENT_ID:
        split -= 1
    fixed = headers[:split]
    block = None if blocks is None else blocks.get(fixed)
    if block is None:
        block = encode_headers(fixed)
        if blocks is not None:
            blocks.add(fixed, block)
    rest = encode_headers(headers[split:]) if split >= 0 else b""
    if request.signed:
        rest += request.signature_block()
    method = request.method
    url = request.url
    cached = None if lines is None or method != "POST" else lines.get(id(url))
    body = request.body
    length = _CONTENT_LENGTHS.get(len(body)) or _content_length(len(body))
    if cached is not None and cached[0] is url:
        line = cached[1]
    elif lines is not None and method == "POST":
        # Not a URL seen before: a URL-encoded request's, most likely. With the start and
        # end of its line cached by what comes before the "?" and an ASCII query, those
        # around the query's bytes (~6k instructions fewer than making the line).
        at = url.find("?")
        known = lines.get(url[:at]) if at >= 0 else None
        if known is not None:
            query = url[at:]
            if query.isascii():
                return b"".join((known[1], query.encode(), known[2], block, rest, length, body))
        line = _new_post_line(url, host_header, lines)
    else:
        line = _request_line(method, url, host_header)
    return b"".join((line, block, rest, length, body))
