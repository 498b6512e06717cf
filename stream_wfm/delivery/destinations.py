"""Destination hosts: what every transport's destination guard builds on.

h1 and pyreqwest connect to exactly the address the destination guard checked, so
they resolve names here instead of inside the HTTP client; aiohttp checks in its
resolver what it then connects to. Here: the parts of a host key, the loop's
resolver, and why a host is refused
(:func:`~stream_wfm.delivery.guard.address_refusal`, applied to an IP literal or to
every address a name resolves to). A name is never refused for being a name: only
for what it resolves to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

from stream_wfm.delivery.guard import address_refusal

__all__ = [
    "Resolve",
    "is_ip_literal",
    "literal_refusal",
    "resolution_refusal",
    "split_host_key",
    "system_resolve",
]

#: ``resolve(host, port)`` → the host's addresses.
Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the loop's ``getaddrinfo`` (TCP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def split_host_key(host_key: str) -> tuple[str, str, int]:
    """``scheme://host:port`` → (scheme, host without brackets, port)."""
    scheme, _, rest = host_key.partition("://")
    host, _, port = rest.rpartition(":")
    return scheme, host.strip("[]"), int(port)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def literal_refusal(ip: str) -> str | None:
    """Why the IP-literal host ``ip`` is refused; None when it is public."""
    reason = address_refusal(ip)
    return None if reason is None else f"{ip} is a {reason} address"


def resolution_refusal(host: str, addresses: Sequence[str]) -> str | None:
    """Why ``host``, resolving to ``addresses``, is refused; None when every one is public."""
    if not addresses:
        return f"{host} resolves to no address"
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            return f"{host} resolves to a {reason} address"
    return None
