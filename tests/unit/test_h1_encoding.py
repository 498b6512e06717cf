"""The h1 transport's pure request encoding: the request target and the bytes on the wire.

The produced bytes are parsed back with llhttp's server-side parser
(``httptools.HttpRequestParser``), as a receiver would read them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httptools
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stream_wfm.delivery.exceptions import UnencodableRequestError
from stream_wfm.delivery.h1_wire import HeaderBlocks, encode_request, host_header, request_target
from stream_wfm.delivery.request import WebhookRequest, host_key_of
from stream_wfm.hostnames import InvalidHostError


def _request(
    url: str = "http://hooks.example.test:8080/hook",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    method: str = "POST",
) -> WebhookRequest:
    return WebhookRequest(method, url, headers, body, 5.0, host_key_of(url), "ev-1")


@dataclass
class _Parsed:
    """What a server-side HTTP/1.1 parser reads from the bytes."""

    method: bytes = b""
    target: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    messages: int = 0

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.messages += 1


def _parse(data: bytes) -> _Parsed:
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    parser.feed_data(data)
    parsed.method = parser.get_method()
    return parsed


# --- request_target ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h:1/hook", "/hook"),
        ("https://hooks.example.com/a/b/c", "/a/b/c"),
        ("http://h:1/hook?x=1&y=2", "/hook?x=1&y=2"),
        ("http://h:1", "/"),
        ("http://h:1/", "/"),
        ("http://h:1?x=1", "/?x=1"),
        ("http://h:1?", "/?"),
        ("http://h:1/a?", "/a?"),
        ("http://h:1?next=/a/b", "/?next=/a/b"),  # a "/" in the query is not the path
        ("http://h:1/a?b?c", "/a?b?c"),
        ("http://[::1]:8080/a?b", "/a?b"),
        ("http://[::1]:8080", "/"),
        ("http://[2001:db8::1]?q=1", "/?q=1"),
        ("https://b\u00fccher.example/x", "/x"),  # a non-ASCII host is not in the target
        # Non-ASCII: percent-encoded as UTF-8; existing escapes and reserved characters stay.
        ("http://h:1/caf\u00e9", "/caf%C3%A9"),
        ("http://h:1/\u65e5\u672c?q=\u00e9", "/%E6%97%A5%E6%9C%AC?q=%C3%A9"),
        (
            "http://h:1/\u00e9/a%2Fb;p=1,2?x=%20y&z=(ok)!*'$+:@~[]-._",
            "/%C3%A9/a%2Fb;p=1,2?x=%20y&z=(ok)!*'$+:@~[]-._",
        ),
        ("http://h:1?\u20ac=1", "/?%E2%82%AC=1"),
    ],
)
def test_request_target(url: str, target: str) -> None:
    assert request_target(url) == target


# Characters a configured URL may have in its path (RFC 3986 pchar, "/" and "%"): no
# "?" or "#", no whitespace or control characters (config validation refuses those).
_PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"
_QUERY_CHARS = _PATH_CHARS + "?"


@given(
    host=st.sampled_from(["h", "hooks.example.com:8443", "127.0.0.1:1", "[::1]:8080", "[fe80::1]"]),
    path=st.text(_PATH_CHARS, max_size=30),
    query=st.none() | st.text(_QUERY_CHARS, max_size=30),
)
@example(host="h", path="", query="a/b")
@example(host="h", path="", query="")
@example(host="[::1]:8080", path="", query=None)
def test_request_target_matches_urlsplit(host: str, path: str, query: str | None) -> None:
    url = f"https://{host}" + ("/" + path if path else "") + ("" if query is None else "?" + query)
    parts = urlsplit(url)
    expected = (parts.path or "/") + ("?" + parts.query if "?" in url else "")
    assert request_target(url) == expected


@given(
    path=st.text(
        st.characters(codec="utf-8", exclude_characters="?#%"),
        max_size=20,
    ),
    query=st.text(
        st.characters(codec="utf-8", exclude_characters="#%"),
        max_size=20,
    ),
)
def test_a_non_ascii_target_is_ascii_and_decodes_back(path: str, query: str) -> None:
    raw = f"/{path}\u00e9?{query}"  # at least one non-ASCII character
    target = request_target("http://h:1" + raw)
    assert target.isascii()
    assert unquote(target, encoding="utf-8") == raw
    # Path and query stay apart: the first "?" is still the separator.
    assert target.index("?") == len(request_target("http://h:1/" + path + "\u00e9"))


# --- encode_request ------------------------------------------------------------------------------
def test_request_bytes_exactly() -> None:
    request = _request(
        "http://hooks.example.test:8080/hook?a=1",
        headers=(("X-API-KEY", "k-1"), ("User-Agent", "stream-wfm/test")),
        body=b'{"a":1}',
    )
    assert encode_request(request, "hooks.example.test:8080") == (
        b"POST /hook?a=1 HTTP/1.1\r\n"
        b"Host: hooks.example.test:8080\r\n"
        b"X-API-KEY: k-1\r\n"
        b"User-Agent: stream-wfm/test\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
        b'{"a":1}'
    )


def test_an_empty_body_has_content_length_0() -> None:
    parsed = _parse(encode_request(_request("http://h:1"), "h:1"))
    assert parsed.messages == 1
    assert parsed.method == b"POST"
    assert parsed.target == b"/"
    assert parsed.headers == [(b"Host", b"h:1"), (b"Content-Length", b"0")]
    assert parsed.body == b""


def test_a_latin_1_header_value_is_sent_as_latin_1() -> None:
    data = encode_request(_request(headers=(("X-Name", "caf\u00e9"),)), "h")
    assert b"\r\nX-Name: caf\xe9\r\n" in data
    assert (b"X-Name", b"caf\xe9") in _parse(data).headers


_TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
# Names whose meaning would change how the parser frames the message (config refuses them).
_FRAMING = {"host", "content-length", "transfer-encoding", "connection", "upgrade"}
header_names = st.text(_TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda name: name.lower() not in _FRAMING
)
# Printable ASCII, space and tab: what config validation allows in a header value.
header_values = st.text("".join(map(chr, range(0x21, 0x7F))) + " \t", max_size=40)


@given(
    method=st.sampled_from(["POST", "PUT", "PATCH", "GET", "DELETE"]),
    path=st.text(_PATH_CHARS, max_size=20),
    headers=st.lists(st.tuples(header_names, header_values), max_size=8),
    body=st.binary(max_size=300),
)
@example(method="POST", path="", headers=[("x", " \tpadded\t ")], body=b"")
@example(method="POST", path="", headers=[("X-Empty", "")], body=b"\r\n\r\n")
def test_encode_request_round_trips_through_a_server_parser(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    url = "http://hooks.example.test:8080/" + path
    data = encode_request(_request(url, tuple(headers), body, method), "hooks.example.test:8080")
    parsed = _parse(data)
    assert parsed.messages == 1  # exactly one message: nothing before or after it
    assert parsed.method == method.encode()
    assert parsed.target == request_target(url).encode()
    assert parsed.headers == [
        (b"Host", b"hooks.example.test:8080"),
        # The parser drops the whitespace after the colon (RFC 9112 §5.1: OWS), no more.
        *[(name.encode(), value.lstrip(" \t").encode()) for name, value in headers],
        (b"Content-Length", str(len(body)).encode()),
    ]
    assert parsed.body == body
    # And on the wire, each header line is exactly "name: value" as given.
    head = data[: data.index(b"\r\n\r\n")].decode("latin-1").split("\r\n")
    assert head[2 : 2 + len(headers)] == [f"{name}: {value}" for name, value in headers]


@pytest.mark.parametrize("bad", ["\r", "\n", "\r\n", "a\rb", "a\nb", "v\r\nX-Injected: 1"])
@pytest.mark.parametrize("where", ["name", "value"])
def test_cr_or_lf_in_a_header_is_refused(bad: str, where: str) -> None:
    header = ("X-" + bad, "v") if where == "name" else ("X-Ok", bad)
    request = _request(headers=(("User-Agent", "ua"), header))
    with pytest.raises(UnencodableRequestError):
        encode_request(request, "h")


@given(
    headers=st.lists(st.tuples(header_names, header_values), min_size=1, max_size=5),
    at=st.integers(min_value=0),
    bad=st.sampled_from(["\r", "\n", "\r\n", "\n\r", "\r\r", "\n\n"]),
    in_name=st.booleans(),
    offset=st.integers(min_value=0),
)
def test_cr_or_lf_anywhere_in_any_header_is_refused(
    headers: list[tuple[str, str]], at: int, bad: str, in_name: bool, offset: int
) -> None:
    index = at % len(headers)
    name, value = headers[index]
    text = name if in_name else value
    cut = offset % (len(text) + 1)
    text = text[:cut] + bad + text[cut:]
    headers[index] = (text, value) if in_name else (name, text)
    with pytest.raises(UnencodableRequestError):
        encode_request(_request(headers=tuple(headers)), "h")


@pytest.mark.parametrize("value", ["\u20ac", "caf\u00e9 \u2603", "\U0001f600"])
def test_a_non_latin_1_header_value_is_refused(value: str) -> None:
    with pytest.raises(UnencodableRequestError):
        encode_request(_request(headers=(("X-Name", value),)), "h")


def test_a_non_latin_1_header_name_is_refused() -> None:
    with pytest.raises(UnencodableRequestError):
        encode_request(_request(headers=(("X-\u20ac", "v"),)), "h")


@given(
    sequence=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    (),
                    (("Authorization", "Basic YTpi"),),
                    (("Authorization", "Basic Yzpk"),),
                    (("Authorization", "Basic YTpi"), ("User-Agent", "ua")),
                    (("User-Agent", "ua"), ("Authorization", "Basic YTpi")),
                ]
            ),
            st.text("abc-", max_size=4),
        ),
        max_size=12,
    )
)
def test_cached_header_blocks_never_mix_requests(
    sequence: list[tuple[tuple[tuple[str, str], ...], str]],
) -> None:
    """With a shared cache of encoded header blocks, every request is encoded exactly as
    without one, whatever came before it."""
    blocks = HeaderBlocks()
    for fixed, event_id in sequence:
        request = _request(headers=(*fixed, ("X-WFM-Event-Id", event_id)))
        assert encode_request(request, "h", blocks) == encode_request(request, "h")


def test_a_cached_header_block_does_not_skip_the_check_of_the_last_header() -> None:
    blocks = HeaderBlocks()
    fixed = (("Authorization", "Basic YTpi"),)
    encode_request(_request(headers=(*fixed, ("X-WFM-Event-Id", "e-1"))), "h", blocks)
    for bad in ("e-2\r\nX-Injected: 1", "\u20ac"):
        with pytest.raises(UnencodableRequestError):
            encode_request(_request(headers=(*fixed, ("X-WFM-Event-Id", bad))), "h", blocks)


@pytest.mark.parametrize(
    ("scheme", "host", "port", "expected"),
    [
        ("http", "hooks.example.test", 80, "hooks.example.test"),
        ("https", "hooks.example.test", 443, "hooks.example.test"),
        ("http", "hooks.example.test", 443, "hooks.example.test:443"),
        ("https", "hooks.example.test", 8443, "hooks.example.test:8443"),
        ("http", "203.0.113.7", 80, "203.0.113.7"),
        ("http", "::1", 8080, "[::1]:8080"),
        ("https", "2001:db8::1", 443, "[2001:db8::1]"),
        ("https", "bücher.example", 443, "xn--bcher-kva.example"),
        ("http", "bücher.example", 8080, "xn--bcher-kva.example:8080"),
        # IDNA 2008 (UTS #46, non-transitional), as aiohttp/yarl: not IDNA 2003's "fass".
        ("https", "faß.example", 443, "xn--fa-hia.example"),
        ("http", "faß.example", 8080, "xn--fa-hia.example:8080"),
        ("https", "öbb.at", 443, "xn--bb-eka.at"),
        ("https", "hooks.example.test.", 443, "hooks.example.test."),
    ],
)
def test_host_header(scheme: str, host: str, port: int, expected: str) -> None:
    assert host_header(scheme, host, port) == expected


@pytest.mark.parametrize("host", ["a" * 64 + "é.example", "\U0001f4a9.example", "a..example"])
def test_a_host_with_no_ascii_form_raises(host: str) -> None:
    """Config validation refuses such a host; one that got through anyway is never sent
    (the transport turns the ValueError into a connection error)."""
    with pytest.raises(InvalidHostError):
        host_header("https", host, 443)


def test_the_header_block_cache_is_bounded_by_bytes() -> None:
    """Blocks of up to 50 headers of 8 KiB each (what config validation allows): however
    many distinct ones go through the transport's cache, it holds at most its byte budget."""
    from stream_wfm.delivery.h1_transport import H1Transport
    from stream_wfm.delivery.h1_wire import HEADER_BLOCK_CACHE_BYTES

    transport = H1Transport(
        max_in_flight=1, max_in_flight_per_host=1, allow_private_destinations=False
    )
    blocks = transport._header_blocks
    for i in range(64):
        fixed = tuple((f"X-Header-{j}", f"{i:04}" + "v" * 8188) for j in range(50))
        request = _request(headers=(*fixed, ("X-WFM-Event-Id", f"ev-{i}")))
        assert encode_request(request, "h", blocks) == encode_request(request, "h")
    assert blocks  # still a cache
    assert sum(len(block) for block in blocks.values()) <= HEADER_BLOCK_CACHE_BYTES


def test_cached_request_lines_never_mix_requests() -> None:
    """With a destination's cache of request lines, every request is encoded exactly as
    without one, whatever came before it, and the cache stays bounded."""
    from stream_wfm.delivery.h1_wire import REQUEST_LINE_CACHE_SIZE, RequestLines

    lines: RequestLines = {}
    blocks = HeaderBlocks()
    urls = [f"http://hooks.example.test:8080/hook?n={n}" for n in range(REQUEST_LINE_CACHE_SIZE)]
    for i in range(3 * REQUEST_LINE_CACHE_SIZE):
        for method in ("POST", "PUT"):
            # The same URL strings again (hits), and equal ones that are other strings.
            url = urls[i % len(urls)] if i % 3 else "".join(("http://h:1/", str(i % 7)))
            request = _request(url, (("X-WFM-Event-Id", f"e-{i}"),), b"{}", method)
            assert encode_request(request, "h:8080", blocks, lines) == encode_request(
                request, "h:8080"
            )
            assert len(lines) <= REQUEST_LINE_CACHE_SIZE


# URLs of a few templates' kinds: with a path or none, with a configured query or none,
# non-ASCII or not; each gets a query after it, as URL-encoded payloads do.
_TEMPLATE_URLS = [
    "http://h:1/hook?",
    "http://h:1/hook?a=1&",
    "http://h:1?",
    "http://h:1/caf\u00e9?",
    "http://[::1]:8080/a/b?",
    "https://b\u00fccher.example/x?",
    "h?next=http://a/b?",  # not one, but its target is not made of what precedes "?"
]
_QUERY_TEXT = st.text(_QUERY_CHARS + " \u00e9\u20ac", max_size=30)


@given(
    st.lists(st.tuples(st.sampled_from(_TEMPLATE_URLS), _QUERY_TEXT, st.booleans()), max_size=40)
)
@example([("http://h:1/hook?", "a=1", False), ("http://h:1/hook?", "a=\u00e9", False)])
def test_request_lines_of_one_off_urls_are_as_without_a_cache(
    sends: list[tuple[str, str, bool]],
) -> None:
    """URLs that carry their payload, new strings each time (and some the same string
    again): with a destination's cache of request lines, each request's bytes are those
    without one, whatever came before, and the cache stays bounded."""
    from stream_wfm.delivery.h1_wire import REQUEST_LINE_CACHE_SIZE, RequestLines

    lines: RequestLines = {}
    blocks = HeaderBlocks()
    previous = "http://h:1/hook"
    for base, query, again in sends:
        url = previous if again else "".join((base, query))
        request = _request(url, (("X-WFM-Event-Id", "e-1"),))
        assert encode_request(request, "h:1", blocks, lines) == encode_request(request, "h:1")
        assert len(lines) <= REQUEST_LINE_CACHE_SIZE
        previous = url


def test_one_off_urls_of_many_templates_keep_the_cache_bounded() -> None:
    """More templates than the cache holds, each sending new URLs (some non-ASCII, whose
    lines are cached by URL only): lines as without a cache, at most
    REQUEST_LINE_CACHE_SIZE entries."""
    from stream_wfm.delivery.h1_wire import REQUEST_LINE_CACHE_SIZE, RequestLines

    lines: RequestLines = {}
    blocks = HeaderBlocks()
    for n in range(3 * REQUEST_LINE_CACHE_SIZE):
        path = f"t{n % (REQUEST_LINE_CACHE_SIZE + 5)}" + ("\u00e9" if n % 3 == 0 else "")
        url = f"http://h:1/{path}?a={n}"
        request = _request(url, (("X-WFM-Event-Id", "e-1"),))
        assert encode_request(request, "h:1", blocks, lines) == encode_request(request, "h:1")
        assert len(lines) <= REQUEST_LINE_CACHE_SIZE


def test_the_header_block_of_a_traced_request_is_cached_without_its_event_id() -> None:
    """The trace context comes after ``X-WFM-Event-Id``: the cached block ends before the
    event id, so that it repeats across events; the rest is still checked."""
    blocks = HeaderBlocks()
    fixed = (("Authorization", "Basic YTpi"),)
    trace = (("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"), ("tracestate", "a=b"))
    for n in range(3):
        request = _request(headers=(*fixed, ("X-WFM-Event-Id", f"e-{n}"), *trace))
        assert encode_request(request, "h", blocks) == encode_request(request, "h")
    assert list(blocks) == [fixed]
    bad = _request(headers=(*fixed, ("X-WFM-Event-Id", "e\r\nX-Injected: 1"), *trace))
    with pytest.raises(UnencodableRequestError):
        encode_request(bad, "h", blocks)
