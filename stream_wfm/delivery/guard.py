"""Destination guard, pure part: which resolved addresses a webhook may not reach.

Unless ``STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS`` is set, the transport checks
every address a destination host resolves to with :func:`address_refusal`
and refuses the request (permanent, reason ``destination_not_allowed``) when
it returns a reason.

The deny list is written out here rather than read from :mod:`ipaddress`'s
``is_private``/``is_global``/``is_reserved``, whose tables change between
Python versions (3.11.7 calls ``192.0.0.192`` global; 3.12.4 changed several
ranges): the same address gets the same answer on every Python. It holds the
IANA special-purpose ranges (RFC 6890 and its successors) that are not
globally reachable, multicast and the limited broadcast address, every IPv6
address outside global unicast (``2000::/3``), and the cloud metadata and
platform addresses (one of which, Azure's ``168.63.129.16``, is in public
address space).

IPv6 addresses that carry an IPv4 address are judged by that IPv4 address:
IPv4-mapped (``::ffff:0:0/96``), NAT64 (the well-known prefix ``64:ff9b::/96``
and the local-use ``64:ff9b:1::/48``, with the IPv4 address in the last 32
bits as in a /96 translation prefix) and 6to4 (``2002::/16``).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Final

__all__ = ["METADATA_ADDRESSES", "REFUSAL_REASONS", "address_refusal"]

#: Every reason :func:`address_refusal` can return.
REFUSAL_REASONS: Final = (
    "invalid",
    "unspecified",
    "loopback",
    "link-local",
    "multicast",
    "carrier-grade NAT/shared",
    "site-local",
    "reserved",
    "private",
    "metadata",
)

#: Cloud metadata and platform addresses (reason ``metadata``). All but Azure's
#: are inside a denied range as well; listing them names the reason.
METADATA_ADDRESSES: Final = (
    "169.254.169.254",  # instance metadata: AWS, GCP, Azure, OCI, OpenStack, DigitalOcean...
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # AWS EKS Pod Identity agent (credentials)
    "168.63.129.16",  # Azure WireServer: platform DNS, DHCP, health probes, VM agent
    "100.100.100.200",  # Alibaba Cloud instance metadata
    "192.0.0.192",  # Oracle Cloud (classic) instance metadata
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    "fe80::a9fe:a9fe",  # OpenStack metadata over IPv6
)

# (network, reason), the more specific entry first where they overlap.
_DENIED_V4: Final = (
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "reserved"),  # "this network" (RFC 791, 1122)
    ("10.0.0.0/8", "private"),  # RFC 1918
    ("100.64.0.0/10", "carrier-grade NAT/shared"),  # RFC 6598
    ("127.0.0.0/8", "loopback"),  # RFC 1122
    ("169.254.0.0/16", "link-local"),  # RFC 3927
    ("172.16.0.0/12", "private"),  # RFC 1918
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments (RFC 6890)
    ("192.0.2.0/24", "reserved"),  # documentation TEST-NET-1 (RFC 5737)
    ("192.88.99.0/24", "reserved"),  # 6to4 relay anycast, deprecated (RFC 7526)
    ("192.168.0.0/16", "private"),  # RFC 1918
    ("198.18.0.0/15", "reserved"),  # benchmarking (RFC 2544)
    ("198.51.100.0/24", "reserved"),  # documentation TEST-NET-2 (RFC 5737)
    ("203.0.113.0/24", "reserved"),  # documentation TEST-NET-3 (RFC 5737)
    ("224.0.0.0/4", "multicast"),  # RFC 5771
    ("255.255.255.255/32", "reserved"),  # limited broadcast (RFC 919)
    ("240.0.0.0/4", "reserved"),  # RFC 1112
)
_DENIED_V6: Final = (
    ("::/128", "unspecified"),  # RFC 4291
    ("::1/128", "loopback"),  # RFC 4291
    ("100::/64", "reserved"),  # discard-only (RFC 6666)
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo included (RFC 2928)
    ("2001:db8::/32", "reserved"),  # documentation (RFC 3849)
    ("3fff::/20", "reserved"),  # documentation (RFC 9637)
    ("fc00::/7", "private"),  # unique local (RFC 4193)
    ("fe80::/10", "link-local"),  # RFC 4291
    ("fec0::/10", "site-local"),  # deprecated (RFC 3879)
    ("ff00::/8", "multicast"),  # RFC 4291
)

_Table = tuple[tuple[int, int, str], ...]


def _table(entries: tuple[tuple[str, str], ...]) -> _Table:
    """(network, reason) → (first address, netmask, reason) as integers."""
    networks = [(ip_network(net), reason) for net, reason in entries]
    return tuple((int(n.network_address), int(n.netmask), reason) for n, reason in networks)


_V4: Final = _table(_DENIED_V4)
_V6: Final = _table(_DENIED_V6)
_METADATA_V4: Final = frozenset(int(IPv4Address(a)) for a in METADATA_ADDRESSES if ":" not in a)
_METADATA_V6: Final = frozenset(int(IPv6Address(a)) for a in METADATA_ADDRESSES if ":" in a)

# Global unicast (RFC 4291 §2.4, IANA IPv6 address space): nothing outside is public.
_GLOBAL_UNICAST: Final = _table((("2000::/3", ""),))[0]
# IPv6 prefixes that carry an IPv4 address: (first address, netmask, where the IPv4 is).
_MAPPED: Final = _table((("::ffff:0:0/96", ""),))[0]  # RFC 4291 §2.5.5.2
_NAT64: Final = _table((("64:ff9b::/96", ""),))[0]  # RFC 6052
_NAT64_LOCAL: Final = _table((("64:ff9b:1::/48", ""),))[0]  # RFC 8215
_SIXTOFOUR: Final = _table((("2002::/16", ""),))[0]  # RFC 3056
_LOW32: Final = 0xFFFFFFFF


def _in(value: int, entry: tuple[int, int, str]) -> bool:
    return value & entry[1] == entry[0]


def _lookup(value: int, table: _Table) -> str | None:
    for first, mask, reason in table:
        if value & mask == first:
            return reason
    return None


def _embedded_ipv4(value: int) -> int | None:
    """The IPv4 address an IPv6 address carries, or None."""
    if _in(value, _MAPPED) or _in(value, _NAT64) or _in(value, _NAT64_LOCAL):
        return value & _LOW32
    if _in(value, _SIXTOFOUR):
        return value >> 80 & _LOW32
    return None


def _ipv4_refusal(value: int) -> str | None:
    if value in _METADATA_V4:
        return "metadata"
    return _lookup(value, _V4)


def address_refusal(ip: str) -> str | None:
    """Why a webhook must not go to ``ip`` (an IPv4 or IPv6 address, IPv6 may
    carry a ``%zone``), or None when it is a public unicast address."""
    try:
        addr: IPv4Address | IPv6Address = ip_address(ip)
    except ValueError:
        return "invalid"
    value = int(addr)  # the zone of a scoped IPv6 address is not part of it
    if isinstance(addr, IPv4Address):
        return _ipv4_refusal(value)
    embedded = _embedded_ipv4(value)
    if embedded is not None:
        return _ipv4_refusal(embedded)
    if value in _METADATA_V6:
        return "metadata"
    reason = _lookup(value, _V6)
    if reason is None and not _in(value, _GLOBAL_UNICAST):
        reason = "reserved"
    return reason
