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
from stream_wfm.errors import StreamWfmError

__all__ = [
    "TRANSPORT_NAMES",
    "TransportNotInstalledError",
    "available_transports",
    "create_transport",
]

#: Name → the module its HTTP client (or, for h1, its response parser) comes from.
_MODULES: Final = {"h1": "httptools", "aiohttp": "aiohttp", "pyreqwest": "pyreqwest"}
#: Name → the extra that installs its client, for those a plain install leaves out.
_EXTRAS: Final = {"pyreqwest": "pyreqwest"}
TRANSPORT_NAMES: Final = tuple(_MODULES)


class TransportNotInstalledError(StreamWfmError):
    """The HTTP client of the transport ``STREAM_WFM_HTTP_TRANSPORT`` names is not installed."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or spec-less module of that name
        return False


def available_transports() -> list[str]:
    """The shipped transports whose HTTP client is installed here."""
    return [name for name, module in _MODULES.items() if _installed(module)]


def _require_installed(name: str) -> None:
    module = _MODULES.get(name)
    if module is None or _installed(module):
        return
    extra = _EXTRAS.get(name)
    how = f"pip install 'stream-wfm[{extra}]'" if extra else f"pip install {module}"
    raise TransportNotInstalledError(
        f"STREAM_WFM_HTTP_TRANSPORT={name}, but the {name} transport is not installed ({how})"
    )


def create_transport(
    name: str,
    *,
    max_in_flight: int,
    max_in_flight_per_host: int,
    allow_private_destinations: bool,
) -> Transport:
    """A new transport ``name`` with these limits.

    Raises :class:`TransportNotInstalledError` (naming the extra to install) when its HTTP
    client is missing, and :class:`ValueError` for an unknown name.
    """
    _require_installed(name)
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
