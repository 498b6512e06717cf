"""docs/contract.md §8: addresses a webhook may not reach (the pure part of the destination
guard)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_wfm.delivery.destinations import (
    is_ip_literal,
    literal_refusal,
    resolution_refusal,
    split_host_key,
)
from stream_wfm.delivery.guard import REFUSAL_REASONS, address_refusal


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.10", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT/shared"),
        ("100.127.255.254", "carrier-grade NAT/shared"),
        ("fec0::1", "site-local"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),  # documentation
        ("2001:db8::1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible
        ("not an ip", "invalid"),
        ("", "invalid"),
        ("256.1.1.1", "invalid"),
    ],
)
def test_refused_addresses(ip: str, reason: str) -> None:
    assert address_refusal(ip) == reason


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.128.0.1",  # just outside 100.64.0.0/10
        "172.32.0.1",  # just outside 172.16.0.0/12
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "2002:808:808::1",  # 6to4 of 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert address_refusal(ip) is None


@given(st.ip_addresses())
def test_any_address_gets_a_known_reason_or_none(ip: object) -> None:
    reason = address_refusal(str(ip))
    assert reason is None or reason in REFUSAL_REASONS


@given(st.ip_addresses(v=4))
def test_ipv4_mapped_is_judged_like_ipv4(ip: object) -> None:
    assert address_refusal(f"::ffff:{ip}") == address_refusal(str(ip))


# --- destinations: what the resolving transports (h1, pyreqwest) build on ---------------------
@pytest.mark.parametrize(
    ("host_key", "parts"),
    [
        ("http://hooks.example.test:80", ("http", "hooks.example.test", 80)),
        ("https://8.8.8.8:8443", ("https", "8.8.8.8", 8443)),
        ("https://[2001:db8::1]:443", ("https", "2001:db8::1", 443)),
    ],
)
def test_split_host_key(host_key: str, parts: tuple[str, str, int]) -> None:
    assert split_host_key(host_key) == parts


@pytest.mark.parametrize(
    ("addresses", "refusal"),
    [
        (["8.8.8.8"], None),
        (["8.8.8.8", "2606:4700:4700::1111"], None),
        (["8.8.8.8", "10.1.2.3"], "h resolves to a private address"),
        (["2606:4700:4700::1111", "::1"], "h resolves to a loopback address"),
        ([], "h resolves to no address"),
    ],
)
def test_resolution_refusal_needs_every_address_public(
    addresses: list[str], refusal: str | None
) -> None:
    assert resolution_refusal("h", addresses) == refusal


def test_literal_refusal() -> None:
    assert literal_refusal("8.8.8.8") is None
    assert literal_refusal("127.0.0.1") == "127.0.0.1 is a loopback address"
    assert is_ip_literal("::1")
    assert is_ip_literal("10.0.0.1")
    assert not is_ip_literal("a.test")
