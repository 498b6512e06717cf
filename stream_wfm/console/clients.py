"""Who is asking, and over https or not: the peer, or what a trusted proxy forwards.

Only when the peer (the TCP connection's address) is in
``STREAM_WFM_CONSOLE_TRUSTED_PROXIES`` are ``X-Forwarded-For`` and
``X-Forwarded-Proto`` believed; from anyone else they are the client's own words.
The client address is the rightmost hop of ``X-Forwarded-For`` that is not a
trusted proxy (each proxy appends the address it saw; what is left of that, the
client may have written); a hop that is not an IP address stops the walk at the
last trusted hop. The scheme is https when the connection is TLS or the last
``X-Forwarded-Proto`` value from a trusted proxy says ``https``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web

from stream_wfm.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Client:
    """``address``: the client's IP address as text (``unknown`` without one)."""

    address: str
    https: bool


def parse_address(text: str) -> IPAddress | None:
    """An IP address, an IPv4-mapped IPv6 address as its IPv4 one, or None."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _hop(text: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` hop: ``addr``, ``[v6]``, ``[v6]:port`` or ``v4:port``."""
    hop = text.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    return parse_address(hop)


def resolve_client(
    peer: str | None,
    tls: bool,
    forwarded_for: Sequence[str],
    forwarded_proto: Sequence[str],
    trusted: Sequence[IPNetwork],
) -> Client:
    """The client of a request from ``peer`` with these ``X-Forwarded-*`` header values."""
    address = parse_address(peer) if peer else None

    def is_trusted(addr: IPAddress) -> bool:
        return any(addr in network for network in trusted)

    if address is None or not is_trusted(address):
        return Client(str(address) if address else (peer or "unknown"), tls)
    client = address
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for text in reversed(hops):
        hop = _hop(text)
        if hop is None:
            break
        client = hop
        if not is_trusted(hop):
            break
    protos = [p.strip().lower() for value in forwarded_proto for p in value.split(",")]
    return Client(str(client), tls or (bool(protos) and protos[-1] == "https"))


_CLIENT = web.RequestKey("client", Client)


def request_client(request: web.Request, trusted: Sequence[IPNetwork]) -> Client:
    """The request's :class:`Client`, worked out once per request."""
    found = request.get(_CLIENT)
    if found is None:
        found = resolve_client(
            request.remote,
            request.secure,
            request.headers.getall(hdrs.X_FORWARDED_FOR, []),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, []),
            trusted,
        )
        request[_CLIENT] = found
    return found
