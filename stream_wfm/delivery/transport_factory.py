"""Makes HTTP transports: every shipped one, by the name ``STREAM_WFM_HTTP_TRANSPORT``
uses. Each implements :class:`~stream_wfm.delivery.transport.Transport`.

The same delivery contract tests run against each (``tests/integration/
test_transport_contract.py``); ``stream-wfm bench`` measures each one's raw
client, and the default is the fastest that passes the contract.
"""

from __future__ import annotations

import importlib.util
from typing import Final

from stream_wfm.delivery.transport import Transport

__all__ = ["TRANSPORT_NAMES", "available_transports", "create_transport"]

#: Name → the module its HTTP client (or, for h1, its response parser) comes from.
_MODULES: Final = {"h1": "httptools", "aiohttp": "aiohttp", "pyreqwest": "pyreqwest"}
TRANSPORT_NAMES: Final = tuple(_MODULES)


def available_transports() -> list[str]:
    """The shipped transports whose HTTP client is installed here."""
    return [name for name, module in _MODULES.items() if importlib.util.find_spec(module)]


def create_transport(
    name: str,
    *,
    max_in_flight: int,
    max_in_flight_per_host: int,
    allow_private_destinations: bool,
) -> Transport:
    """A new transport ``name`` with these limits."""
    if name == "h1":
        from stream_wfm.delivery.h1_transport import H1Transport

        return H1Transport(
            max_in_flight=max_in_flight,
            max_in_flight_per_host=max_in_flight_per_host,
            allow_private_destinations=allow_private_destinations,
        )
    if name == "pyreqwest":
        from stream_wfm.delivery.pyreqwest_transport import PyreqwestTransport

        return PyreqwestTransport(
            max_in_flight=max_in_flight,
            max_in_flight_per_host=max_in_flight_per_host,
            allow_private_destinations=allow_private_destinations,
        )
    if name == "aiohttp":
        from stream_wfm.delivery.aiohttp_transport import AiohttpTransport

        return AiohttpTransport(
            max_in_flight=max_in_flight,
            max_in_flight_per_host=max_in_flight_per_host,
            allow_private_destinations=allow_private_destinations,
        )
    raise ValueError(f"unknown HTTP transport {name!r}; one of {', '.join(TRANSPORT_NAMES)}")
