"""The console's client address and scheme: X-Forwarded-* only from trusted proxies."""

from __future__ import annotations

import pytest

from stream_wfm.console.clients import Client, resolve_client
from stream_wfm.settings import parse_networks

TRUSTED = parse_networks("10.0.0.0/8, 192.0.2.1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "tls", "forwarded_for", "proto", "expected"),
    [
        # No trusted proxy in between: the headers are the client's own words.
        ("203.0.113.9", False, ["198.51.100.1"], ["https"], Client("203.0.113.9", False)),
        ("203.0.113.9", True, [], [], Client("203.0.113.9", True)),
        # A trusted proxy: the rightmost untrusted hop is the client.
        ("10.1.2.3", False, ["198.51.100.1"], ["https"], Client("198.51.100.1", True)),
        (
            "10.1.2.3",
            False,
            ["6.6.6.6, 198.51.100.1, 10.9.9.9", "192.0.2.1"],
            ["http, https"],
            Client("198.51.100.1", True),
        ),
        ("10.1.2.3", False, ["[2001:db8::7]:4711"], ["http"], Client("2001:db8::7", False)),
        ("10.1.2.3", False, ["198.51.100.1:4711"], [], Client("198.51.100.1", False)),
        # Every hop trusted: the leftmost one.
        ("10.1.2.3", False, ["10.0.0.5, 10.0.0.6"], [], Client("10.0.0.5", False)),
        # Garbage in the chain: stop at the last hop that was trusted.
        ("10.1.2.3", False, ["198.51.100.1, not-an-ip"], [], Client("10.1.2.3", False)),
        ("10.1.2.3", False, [], ["https"], Client("10.1.2.3", True)),
        ("::ffff:10.1.2.3", False, ["198.51.100.1"], [], Client("198.51.100.1", False)),
        ("fd00::1", False, ["2001:db8::1"], ["HTTPS"], Client("2001:db8::1", True)),
        (None, False, ["198.51.100.1"], ["https"], Client("unknown", False)),
    ],
)
def test_forwarded_headers_count_only_from_a_trusted_peer(
    peer: str | None, tls: bool, forwarded_for: list[str], proto: list[str], expected: Client
) -> None:
    assert resolve_client(peer, tls, forwarded_for, proto, TRUSTED) == expected


def test_nothing_is_trusted_by_default() -> None:
    assert resolve_client("127.0.0.1", False, ["198.51.100.1"], ["https"], ()) == Client(
        "127.0.0.1", False
    )
