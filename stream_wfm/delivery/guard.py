"""Destination guard, pure part: which resolved addresses a webhook may not reach.

Unless ``STREAM_WFM_ALLOW_PRIVATE_DESTINATIONS`` is set, the transport checks
every address a destination host resolves to with :func:`address_refusal`
and refuses the request (permanent, reason ``destination_not_allowed``) when
it returns a reason.

IPv6 addresses that carry an IPv4 address are judged by that IPv4 address:
IPv4-mapped (``::ffff:127.0.0.1``), NAT64 well-known prefix
(``64:ff9b::/96``) and 6to4 (``2002::/16``).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final

__all__ = ["REFUSAL_REASONS", "address_refusal"]

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
)

_SHARED: Final = IPv4Network("100.64.0.0/10")
_NAT64: Final = IPv6Network("64:ff9b::/96")


def _embedded_ipv4(addr: IPv6Address) -> IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr.sixtofour


def address_refusal(ip: str) -> str | None:
    """Why a webhook must not go to ``ip`` (an IPv4 or IPv6 address, IPv6 may
    carry a ``%zone``), or None when it is a public unicast address."""
    try:
        addr: IPv4Address | IPv6Address = ip_address(ip)
    except ValueError:
        return "invalid"
    if isinstance(addr, IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            addr = embedded
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if isinstance(addr, IPv4Address) and addr in _SHARED:
        return "carrier-grade NAT/shared"
    if isinstance(addr, IPv6Address) and addr.is_site_local:
        return "site-local"
    if addr.is_reserved:
        return "reserved"
    if addr.is_private:
        return "private"
    if not addr.is_global:
        return "reserved"
    return None
