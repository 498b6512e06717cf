"""docs/contract.md §8: addresses a webhook may not reach (the pure part of the destination
guard)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

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
        ("169.254.169.254", "metadata"),  # cloud metadata
        ("169.254.169.253", "link-local"),
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
        ("192.0.2.1", "reserved"),  # documentation
        ("2001:db8::1", "reserved"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:169.254.1.1", "link-local"),
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


# --- the explicit deny list (docs/contract.md §8), independent of the Python version -----------
#: (network, reason, sample addresses in it). Written out here, not imported from the guard,
#: so that an entry dropped from the guard fails a test.
DENIED_V4: list[tuple[str, str, list[str]]] = [
    ("0.0.0.0/32", "unspecified", ["0.0.0.0"]),
    ("0.0.0.0/8", "reserved", ["0.0.0.1", "0.1.2.3", "0.255.255.255"]),  # "this network"
    ("10.0.0.0/8", "private", ["10.0.0.0", "10.1.2.3", "10.255.255.255"]),
    ("100.64.0.0/10", "carrier-grade NAT/shared", ["100.64.0.0", "100.127.255.255"]),
    ("127.0.0.0/8", "loopback", ["127.0.0.0", "127.0.0.1", "127.255.255.255"]),
    ("169.254.0.0/16", "link-local", ["169.254.0.0", "169.254.1.1", "169.254.255.255"]),
    ("172.16.0.0/12", "private", ["172.16.0.0", "172.20.1.1", "172.31.255.255"]),
    # IETF protocol assignments: Python 3.11.7 lets 192.0.0.9, .10 and .192 through.
    ("192.0.0.0/24", "reserved", ["192.0.0.0", "192.0.0.8", "192.0.0.9", "192.0.0.10"]),
    ("192.0.0.0/24", "reserved", ["192.0.0.170", "192.0.0.171", "192.0.0.255"]),
    ("192.0.2.0/24", "reserved", ["192.0.2.0", "192.0.2.1", "192.0.2.255"]),  # TEST-NET-1
    ("192.88.99.0/24", "reserved", ["192.88.99.0", "192.88.99.1", "192.88.99.255"]),  # 6to4 relay
    ("192.168.0.0/16", "private", ["192.168.0.0", "192.168.1.10", "192.168.255.255"]),
    ("198.18.0.0/15", "reserved", ["198.18.0.0", "198.19.255.255"]),  # benchmarking
    ("198.51.100.0/24", "reserved", ["198.51.100.0", "198.51.100.255"]),  # TEST-NET-2
    ("203.0.113.0/24", "reserved", ["203.0.113.0", "203.0.113.255"]),  # TEST-NET-3
    ("224.0.0.0/4", "multicast", ["224.0.0.1", "239.255.255.250", "239.255.255.255"]),
    ("240.0.0.0/4", "reserved", ["240.0.0.0", "240.0.0.1", "255.255.255.254"]),
    ("255.255.255.255/32", "reserved", ["255.255.255.255"]),  # limited broadcast
]
DENIED_V6: list[tuple[str, str, list[str]]] = [
    ("::/128", "unspecified", ["::"]),
    ("::1/128", "loopback", ["::1"]),
    ("100::/64", "reserved", ["100::", "100::ffff:ffff:ffff:ffff"]),  # discard-only
    # IETF protocol assignments, Teredo (2001::/32) included.
    ("2001::/23", "reserved", ["2001::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:1::1"]),
    ("2001::/23", "reserved", ["2001:2::1", "2001:3::1", "2001:20::1", "2001:1ff:ffff::"]),
    ("2001:db8::/32", "reserved", ["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff::1"]),
    ("3fff::/20", "reserved", ["3fff::", "3fff:fff:ffff::1"]),  # documentation (RFC 9637)
    ("fc00::/7", "private", ["fc00::", "fc00::1", "fd12:3456::1", "fdff:ffff::1"]),
    ("fe80::/10", "link-local", ["fe80::", "fe80::1", "fe80::1%eth0", "febf:ffff::1"]),
    ("fec0::/10", "site-local", ["fec0::", "fec0::1", "feff:ffff::1"]),
    ("ff00::/8", "multicast", ["ff00::", "ff02::1", "ff0e::1", "ffff::1"]),
    # Outside 2000::/3 (global unicast) nothing is public: IPv4-compatible, SIIT, SRv6 ...
    ("::/96", "reserved", ["::2", "::127.0.0.1", "::8.8.8.8", "::255.255.255.255"]),
    ("::ffff:0:0:0/96", "reserved", ["::ffff:0:0:0", "::ffff:0:808:808"]),  # SIIT
    ("100::/8", "reserved", ["100:0:0:1::1", "1ff::1"]),
    ("200::/7", "reserved", ["200::1", "3ff:ffff::1"]),
    ("400::/6", "reserved", ["400::1", "7ff::1"]),
    ("800::/5", "reserved", ["800::1", "fff::1"]),
    ("1000::/4", "reserved", ["1000::1", "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]),
    ("4000::/2", "reserved", ["4000::1", "5f00::1", "7fff::1"]),
    ("8000::/1", "reserved", ["8000::1", "e000::1", "fe00::1"]),
]
#: Cloud metadata and platform addresses: refused as "metadata", also when embedded.
METADATA = [
    "169.254.169.254",  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean ... instance metadata
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # AWS EKS Pod Identity agent
    "168.63.129.16",  # Azure WireServer (platform: DNS, DHCP, health probes, VM agent)
    "100.100.100.200",  # Alibaba Cloud metadata
    "192.0.0.192",  # Oracle Cloud (classic) metadata
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    "fe80::a9fe:a9fe",  # OpenStack metadata over IPv6
    "fe80::a9fe:a9fe%eth0",
]
_METADATA_ADDRESSES = {ip_address(ip.partition("%")[0]) for ip in METADATA}

#: Public addresses just outside a denied network.
BOUNDARIES = [
    "1.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "168.63.129.15",
    "168.63.129.17",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    "2000::1",
    "2001:200::1",  # just past 2001::/23
    "2001:db7:ffff::1",
    "2001:db9::1",
    "2001:4860:4860::8888",
    "2003::1",
    "3ffe:ffff::1",
    "3fff:1000::1",  # just past 3fff::/20
]


def _cases(table: list[tuple[str, str, list[str]]]) -> list[tuple[str, str]]:
    return [(ip, reason) for _net, reason, samples in table for ip in samples]


@pytest.mark.parametrize(("ip", "reason"), _cases(DENIED_V4) + _cases(DENIED_V6))
def test_every_denied_network(ip: str, reason: str) -> None:
    assert address_refusal(ip) == reason


@pytest.mark.parametrize("ip", METADATA)
def test_cloud_metadata_and_platform_addresses(ip: str) -> None:
    assert address_refusal(ip) == "metadata"
    assert literal_refusal(ip) == f"{ip} is a metadata address"


@pytest.mark.parametrize("ip", [ip for ip in METADATA if ":" not in ip])
def test_cloud_metadata_addresses_embedded_in_ipv6(ip: str) -> None:
    v4 = IPv4Address(ip)
    for form in (
        f"::ffff:{ip}",
        str(IPv6Address(int(_NAT64) | int(v4))),
        str(IPv6Address(int(_NAT64_LOCAL) | int(v4))),
        str(IPv6Address(int(_SIXTOFOUR) | int(v4) << 80)),
    ):
        assert address_refusal(form) == "metadata", form


@pytest.mark.parametrize("ip", BOUNDARIES)
def test_public_addresses_next_to_denied_networks(ip: str) -> None:
    assert address_refusal(ip) is None


def test_the_guard_does_not_use_the_pythons_address_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ipaddress``'s ``is_private``, ``is_global``... change between Python versions
    (3.11.7 calls 192.0.0.192 global): the guard must not read them."""

    def boom(self: object) -> bool:
        raise AssertionError("the guard read a version-dependent ipaddress property")

    for cls in (IPv4Address, IPv6Address):
        for name in (
            "is_private",
            "is_global",
            "is_reserved",
            "is_loopback",
            "is_link_local",
            "is_multicast",
            "is_unspecified",
        ):
            monkeypatch.setattr(cls, name, property(boom))
    for name in ("is_site_local", "ipv4_mapped", "sixtofour", "teredo"):
        monkeypatch.setattr(IPv6Address, name, property(boom))
    for ip, reason in [
        *_cases(DENIED_V4),
        *_cases(DENIED_V6),
        *((ip, "metadata") for ip in METADATA),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
    ]:
        assert address_refusal(ip) == reason, ip
    for ip in BOUNDARIES:
        assert address_refusal(ip) is None, ip


_DENIED_NETWORKS = [(ip_network(net), reason) for net, reason, _samples in [*DENIED_V4, *DENIED_V6]]


@given(st.sampled_from(_DENIED_NETWORKS), st.integers(min_value=0))
def test_any_address_in_a_denied_network_is_refused(
    entry: tuple[IPv4Network | IPv6Network, str], offset: int
) -> None:
    network, reason = entry
    addr = network[offset % network.num_addresses]
    refusal = address_refusal(str(addr))
    assert refusal is not None
    if addr in _METADATA_ADDRESSES:
        assert refusal == "metadata"
    elif str(addr) not in ("0.0.0.0", "::", "::1"):
        more_specific = [
            r for n, r in _DENIED_NETWORKS if addr in n and n.prefixlen > network.prefixlen
        ]
        assert refusal == (more_specific[-1] if more_specific else reason)


_NAT64 = IPv6Address("64:ff9b::")
_NAT64_LOCAL = IPv6Address("64:ff9b:1::")
_SIXTOFOUR = IPv6Address("2002::")


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=2**80 - 1))
def test_ipv6_carrying_ipv4_is_judged_like_the_ipv4(ip: IPv4Address, low: int) -> None:
    expected = address_refusal(str(ip))
    assert address_refusal(str(IPv6Address(int(_NAT64) | int(ip)))) == expected
    # The local-use prefix 64:ff9b:1::/48 (RFC 8215), as an operator's /96.
    local = int(_NAT64_LOCAL) | (low >> 32 & (2**48 - 1)) << 32 | int(ip)
    assert address_refusal(str(IPv6Address(local))) == expected
    # 6to4: the IPv4 address follows 2002::/16; subnet and interface bits are anything.
    assert address_refusal(str(IPv6Address(int(_SIXTOFOUR) | int(ip) << 80 | low))) == expected


_CARRY_IPV4 = [
    ip_network(n) for n in ("2000::/3", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
]


@given(st.ip_addresses(v=6))
def test_ipv6_outside_global_unicast_is_refused(ip: IPv6Address) -> None:
    """IANA allocates global unicast from 2000::/3 only; elsewhere only the prefixes that
    carry an IPv4 address can be public."""
    if not any(ip in net for net in _CARRY_IPV4):
        assert address_refusal(str(ip)) is not None
