"""Saved secret values the browser never sees, and where they may be sent.

Saved header values and signing secrets never go back to the browser, so a form that
leaves a header value empty asks to keep it, and a form says nothing of the signing
secrets (they are kept, unless a signing button asks otherwise). The server decides
what is kept, from the saved config alone:

* **by name**: an empty row keeps the value saved under exactly the row's header name.
  The form's ``header_saved_<i>`` fields and row numbers are display hints; they never
  pick a value, so a value cannot be moved to another name.
* **by origin**: a saved value was given for the origins (scheme, host, port) of the
  saved config's URLs. It is kept only while every URL of the new config is on one of
  those origins; when a URL moves to another origin the value must be typed again, so a
  credential for ``https://wfm.example.com`` never follows a URL changed to another
  site — not on save, and not in ``Send test event``, which sends the form's unsaved URL.
  The same holds for signing secrets: they cannot be typed in again (the console only
  generates them), so when a URL moves, ``Generate secret`` replaces them with a new one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from stream_wfm.integrations.model import IntegrationConfig

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _host(netloc: str) -> str:
    """The host of a URL's ``netloc`` (no user info, port or brackets), compared as
    exactly as it must be: an IP address in its canonical form, an ASCII name in lower
    case (as DNS compares names), any other name exactly as written — its ASCII form
    depends on the IDNA variant (``faß`` is ``fass`` under IDNA 2003 but not 2008), so
    two spellings count as two origins rather than risk one value reaching two hosts."""
    host = netloc.rpartition("@")[2]
    host = host[1 : host.find("]")] if host.startswith("[") else host.partition(":")[0]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower() if host.isascii() else host


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL — the scheme in lower case, the host as
    :func:`_host` compares it (an IPv6 address in brackets), the default port filled in —
    or None when ``url`` is not such a URL. Two URLs have the same origin when these are
    equal; equal only when they certainly reach the same host and port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = _host(parts.netloc)
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


@dataclass(frozen=True, slots=True)
class SavedSecrets:
    """The secret values of a saved config (header name → value) and the origins they
    were saved for."""

    values: Mapping[str, str] = field(default_factory=dict)
    origins: frozenset[str] = frozenset()
    signing: tuple[str, ...] = ()  # the signing secrets, newest first

    @classmethod
    def of(cls, config: IntegrationConfig | None) -> SavedSecrets:
        if config is None:
            return cls()
        urls = (config.agent_event_url, config.call_event_url)
        return cls(
            values={name: secret.get_secret_value() for name, secret in config.headers.items()},
            origins=frozenset(o for url in urls if url and (o := origin_of(url)) is not None),
            signing=tuple(secret.get_secret_value() for secret in config.signing_secrets),
        )

    def value(self, name: str) -> str | None:
        """The value saved under exactly ``name``, or None."""
        return self.values.get(name)

    def may_go_to(self, urls: Iterable[str]) -> bool:
        """Whether saved values may be sent to every one of ``urls`` (empty ones are skipped):
        each is on an origin they were saved for."""
        return all(
            (origin := origin_of(url)) is not None and origin in self.origins for url in urls if url
        )
