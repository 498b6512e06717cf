"""Differential fuzzing of h1's response parsing against h11.

Each generated response (status lines valid and not, headers, ``Content-Length``,
chunked and close-delimited bodies, 1xx informational responses before the final one,
early close) is served by a raw asyncio server on 127.0.0.1 to one
:class:`~stream_wfm.delivery.h1_transport.H1Transport` request, and the same bytes are
fed to an h11 client-side ``Connection`` (after the same request). The verdicts must
agree: the same final status, or both reject (h1: a connection error; h11: a protocol
error or a close before the response is complete).

Left out of generation, where h1 differs on purpose or h11 cannot follow:

* bodies beyond ``DRAIN_LIMIT`` (h1 takes the status and closes the connection without
  reading the rest) and heads near ``MAX_HEAD_BYTES`` or h11's 16 KiB limit: bodies here
  are at most 300 bytes and heads a few hundred;
* ``101 Switching Protocols``: h1 takes it as the final answer (its status is the
  outcome, the connection is closed); h11 refuses a 101 nobody asked for;
* a ``Transfer-Encoding`` other than one ``chunked`` (``gzip, chunked``, or
  ``chunked`` twice): h11 refuses them all, llhttp reads the chunked framing;
* bytes before the request is written (the server here answers only after reading
  the request): h1 refuses those on purpose (tests in ``test_h1_transport.py``).

Where the two disagree on purpose, each case is generated and marked, and the test
fails if h1 ever does otherwise or if an unmarked case disagrees. h1 (llhttp) rejects,
where h11 reads a status (:data:`H1_STRICTER`): a duplicated ``Content-Length`` with
the same value (h11 merges them); ``Content-Length`` together with ``Transfer-Encoding``
(h11 ignores the length; RFC 9112 §6.1 lets a client reject it, a smuggling vector);
obsolete line folding (RFC 9112 §5.2); a line ended by a bare LF; whitespace before the
end of a chunk-size line; an HTTP version other than 0.9, 1.0, 1.1 and 2.0 (RFC 9110
§2.5 would read HTTP/1.2 as 1.1); a control character other than HTAB in a header
value (RFC 9110 §5.5). h1 reads a status where h11 rejects (:data:`H1_LENIENT`): a
control character in the reason phrase, which h1 ignores (RFC 9112 §4); and a status
of three digits below 100 (``099``: status 99, permanent like any status outside
100-599 in the contract's outcome table). Rejecting is a connection error, retried.
"""

from __future__ import annotations

import asyncio
import string
from dataclasses import dataclass, field
from typing import TypeVar

import h11
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from stream_wfm.delivery.h1_transport import H1Transport
from stream_wfm.delivery.request import WebhookRequest, host_key_of

pytestmark = pytest.mark.integration

T = TypeVar("T")

_TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
_VCHAR = "".join(map(chr, range(0x21, 0x7F)))
_CONTROLS = frozenset(map(chr, [*range(0x20), 0x7F])) - {"\t"}
_FRAMING = {"content-length", "transfer-encoding", "connection", "upgrade", "trailer"}


@dataclass
class Case:
    """A generated response: its bytes, and why h1 may reject what h11 accepts."""

    data: bytes = b""
    faulty: bool = False  # drawn with odd or broken parts
    stricter: list[str] = field(default_factory=list)  # reasons, see H1_STRICTER
    lenient: list[str] = field(default_factory=list)  # reasons, see H1_LENIENT

    def add(self, part: bytes | str, stricter: str | None = None) -> None:
        self.data += part.encode("latin-1") if isinstance(part, str) else part
        if stricter is not None:
            self.stricter.append(stricter)


#: Why h1 (llhttp) may reject a response h11 accepts; every one is deliberate.
H1_STRICTER = {
    "duplicate content-length": "two Content-Length fields, even with the same value",
    "content-length with chunked": "Content-Length and Transfer-Encoding together",
    "obs-fold": "a header value continued on the next line (obsolete line folding)",
    "bare lf": "a line ended by LF alone",
    "whitespace before eol": "whitespace before the end of a chunk-size line",
    "http version": "an HTTP version other than 0.9, 1.0, 1.1 and 2.0 (e.g. HTTP/1.2)",
    "control": "a control character in a header value (RFC 9110 §5.5 allows none but HTAB)",
}
#: Why h1 may read a status where h11 rejects the response; deliberate too.
H1_LENIENT = {
    "reason phrase": "a control character in the reason phrase, which h1 never reads "
    "(RFC 9112 §4: a client SHOULD ignore it); the status code is unambiguous",
    "status below 100": "a status code of three digits below 100 (099): llhttp reads 99, "
    "which the contract's outcome table makes permanent as any status outside 100-599; "
    "h11 refuses it",
}


header_names = st.text(_TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda name: name.lower() not in _FRAMING
)
header_values = st.one_of(
    st.text(_VCHAR + " \t", max_size=24).map(lambda v: v.strip(" \t")),
    st.text(_VCHAR, min_size=1, max_size=8).map(lambda v: v + "\xe9"),  # obs-text
)
odd_header_values = st.sampled_from(["a\x00b", "a\x7fb", "\x01", "a\x0bb", "x\x1f"])


def pick(draw: st.DrawFn, case: Case, usual: list[T], odd: list[T]) -> T:
    """One of ``usual``; in a faulty case, now and then one of ``odd``."""
    if case.faulty and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(odd))
    return draw(st.sampled_from(usual))


@st.composite
def header_lines(draw: st.DrawFn, case: Case) -> None:
    for _ in range(draw(st.integers(0, 4))):
        name = draw(header_names)
        value = draw(pick(draw, case, [header_values], [odd_header_values]))
        form = pick(draw, case, ["plain", "no-space"], ["space-before-colon", "fold"])
        stricter = "control" if any(c in _CONTROLS for c in value) else None
        if form == "plain":
            case.add(f"{name}: {value}\r\n", stricter)
        elif form == "no-space":
            case.add(f"{name}:{value}\r\n", stricter)
        elif form == "space-before-colon":
            case.add(f"{name} : {value}\r\n")  # invalid for both (RFC 9112 §5.1)
        else:
            case.add(f"{name}: {value}\r\n  {value}\r\n", stricter="obs-fold")


#: Status lines beyond the plain valid ones, with the reason h1 may differ (or None).
_ODD_STATUS_LINES: list[tuple[str | None, str | None]] = [
    ("HTTP/1.1 2OO OK", None),
    ("HTTP/2 200 OK", None),
    ("HTTP/2.0 200 OK", None),
    ("HTTP/1.1 20 OK", None),
    ("HTTP/1.1 2000 OK", None),
    ("http/1.1 200 OK", None),
    ("HTTP/1.1  200 OK", None),
    ("HTTP/1.1 200", None),
    ("HTTP/1.1 200 ", None),
    ("HTTP/1.1 -20 OK", None),
    ("ICY 200 OK", None),
    (" HTTP/1.1 200 OK", None),
    ("HTTP/1.2 200 OK", "http version"),
    ("HTTP/3.0 200 OK", "http version"),
    ("HTTP/0.9 200 OK", None),
    ("HTTP/1.1 200 O\x00K", "reason phrase"),
    ("HTTP/1.1 200 \xe9t\xe9", None),
    ("HTTP/1.1 099 Low", "status below 100"),
    ("HTTP/1.1 600 High", None),
    ("HTTP/1.1 999 High", None),
]


@st.composite
def responses(draw: st.DrawFn) -> Case:
    """A response; a quarter of them faulty (some part of it odd or broken)."""
    case = Case(faulty=draw(st.integers(0, 3)) == 0)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # informational responses first
        code = draw(st.sampled_from([100, 102, 103, 199]))
        case.add(f"HTTP/1.1 {code} Info\r\n")
        draw(header_lines(case))
        case.add("\r\n")
    plain: list[tuple[str | None, str | None]] = [(None, None)]  # generated below
    line, why = pick(draw, case, plain, _ODD_STATUS_LINES)
    if line is None:
        version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
        code = draw(st.sampled_from([200, 201, 204, 299, 304, 404, 429, 503, 599]))
        reason = draw(st.text(string.ascii_letters + " ", max_size=12))
        line = f"HTTP/{version} {code} {reason}".rstrip(" ")
    case.add(line + "\r\n")
    if why is not None:
        (case.lenient if why in H1_LENIENT else case.stricter).append(why)
    draw(header_lines(case))
    body = draw(st.binary(max_size=300))
    framing = pick(draw, case, ["length", "chunked", "close"], ["odd"])
    if framing == "length":
        declared = len(body) + pick(draw, case, [0], [1, -1])
        case.add(f"Content-Length: {max(declared, 0)}\r\n\r\n")
        case.add(body)
    elif framing == "chunked":
        draw(chunked_body(case, body))
    elif framing == "close":
        case.add("\r\n")
        case.add(body)
    else:
        draw(odd_framing(case, body))
    case.add(pick(draw, case, [b""], [b"junk", b"HTTP/1.1 200 OK\r\n\r\n"]))
    if pick(draw, case, [False], [True]):  # early close
        case.data = case.data[: draw(st.integers(0, len(case.data)))]
    return case


@st.composite
def chunked_body(draw: st.DrawFn, case: Case, body: bytes) -> None:
    case.add("Transfer-Encoding: chunked\r\n\r\n")
    while body:
        size = draw(st.integers(1, len(body)))
        chunk, body = body[:size], body[size:]
        form = pick(draw, case, ["x", "X", "ext", "zeros"], ["space"])
        if form == "space":
            case.add(f"{size:x} \r\n", stricter="whitespace before eol")
        else:
            text = {"x": f"{size:x}", "X": f"{size:X}", "zeros": f"{size:04x}"}
            case.add(text.get(form, f"{size:x};name=value") + "\r\n")
        case.add(chunk + pick(draw, case, [b"\r\n"], [b"", b"\n", b"XX"]))
    case.add(pick(draw, case, ["0\r\n", "0;ext\r\n"], ["zz\r\n"]))
    if draw(st.booleans()):
        case.add("X-Trailer: t\r\n")
    case.add(pick(draw, case, ["\r\n"], [""]))


@st.composite
def odd_framing(draw: st.DrawFn, case: Case, body: bytes) -> None:
    """Framing headers h1 and h11 may read differently."""
    n = len(body)
    form = draw(
        st.sampled_from(
            ["dup-same", "dup-differ", "list", "plus", "hex", "negative", "empty",
             "ows", "both", "bare-lf"]
        )
    )  # fmt: skip
    if form == "dup-same":
        case.add(f"Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n", "duplicate content-length")
    elif form == "dup-differ":
        case.add(f"Content-Length: {n}\r\nContent-Length: {n + 1}\r\n\r\n")
    elif form == "list":
        case.add(f"Content-Length: {n}, {n}\r\n\r\n", "duplicate content-length")
    elif form in ("plus", "hex", "negative", "empty"):
        value = {"plus": f"+{n}", "hex": f"0x{n:x}", "negative": f"-{n}", "empty": ""}[form]
        case.add(f"Content-Length: {value}\r\n\r\n")
    elif form == "ows":
        case.add(f"Content-Length:  {n}\t\r\n\r\n")
    elif form == "both":
        case.add(f"Content-Length: {n}\r\n", "content-length with chunked")
        draw(chunked_body(case, body))
        return
    else:
        case.add(f"Content-Length: {n}\n\n", "bare lf")
    case.add(body)


# --- the two verdicts ----------------------------------------------------------------------------
def h11_verdict(data: bytes) -> int | None:
    """The final status h11 reads from ``data`` followed by the end of the stream, or
    None when it rejects it or the stream ends before the response does."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(
        h11.Request(method="POST", target="/hook", headers=[("Host", "h"), ("Content-Length", "2")])
    )
    conn.send(h11.Data(data=b"{}"))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status = None
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status
            elif not isinstance(event, h11.InformationalResponse | h11.Data):
                return None  # closed before the end of the response
    except h11.RemoteProtocolError:
        return None


async def h1_verdict(data: bytes) -> int | None:
    """The final status h1 reads when a server answers its request with ``data`` and
    closes, or None for a connection error."""

    class Serve(asyncio.Protocol):
        received = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, chunk: bytes) -> None:
            self.received += chunk
            _head, found, rest = self.received.partition(b"\r\n\r\n")
            if found and len(rest) >= 2:  # the request's head and its body, "{}"
                self.transport.write(data)
                self.transport.close()

    server = await asyncio.get_running_loop().create_server(Serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    transport = H1Transport(
        max_in_flight=1, max_in_flight_per_host=1, allow_private_destinations=True
    )
    try:
        request = WebhookRequest(
            "POST", url, (("X-WFM-Event-Id", "e"),), b"{}", 5.0, host_key_of(url), "e"
        )
        outcome = await transport.send(request)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    assert outcome.status_class != "timeout", "h1 waited for more after the server closed"
    return outcome.status


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=responses())
@example(case=Case(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
@example(case=Case(b"HTTP/1.1 103 Early\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"))
@example(case=Case(b"HTTP/1.0 503 X\r\n\r\nclose-delimited"))
@example(case=Case(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n"))
@example(case=Case(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"))
@example(case=Case(b"HTTP/1.1 100 Continue\r\n\r\n"))
async def test_h1_reads_responses_as_h11_does(case: Case) -> None:
    ours = await h1_verdict(case.data)
    reference = h11_verdict(case.data)
    event(
        "both read a status"
        if ours == reference is not None
        else f"h1: {ours}, h11: {reference}"[:24]
    )
    if ours != reference and ours is None and case.stricter:
        return  # h1 rejects what h11 lets through: deliberate, see H1_STRICTER
    if ours != reference and reference is None and case.lenient:
        return  # h1 reads what h11 rejects: deliberate, see H1_LENIENT
    assert ours == reference, f"h1: {ours}, h11: {reference}, response: {case.data!r}"
