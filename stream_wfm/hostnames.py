"""Host names on the wire: the one conversion of a URL's host to its ASCII form.

Config validation, the ``Host`` header, DNS resolution and TLS SNI all use
:func:`ascii_host`, so a webhook's host is one name everywhere. An internationalized name
is converted with IDNA 2008 and UTS #46 mapping, non-transitional (the ``idna``
package, as yarl and so aiohttp do, and as browsers do): ``faß.example`` is
``xn--fa-hia.example``, not IDNA 2003's ``fass.example``, another domain. An ASCII name
is lower-cased and its labels checked (letters, digits, ``-`` and ``_``, 1 to 63
characters; a trailing dot is kept); an IP address is left as it is.

It lives outside ``delivery`` because ``integrations`` (config validation) must not
import ``delivery``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Final

import idna

from stream_wfm.errors import StreamWfmError

__all__ = ["InvalidHostError", "ascii_host"]

#: RFC 1035's limit on a name's length (without the trailing dot).
MAX_NAME_LENGTH: Final = 253
# One label of an ASCII name. "_" is not in RFC 1123's host names but is in real DNS
# names (and accepted by aiohttp, reqwest and the resolvers).
_ASCII_LABEL: Final = re.compile(r"[a-z0-9_-]{1,63}")


class InvalidHostError(StreamWfmError, ValueError):
    """A host name with no ASCII form: the message says why."""


def _label_problem(label: str) -> str:
    if not label:
        return "an empty label"
    if len(label) > 63:
        return "a label longer than 63 characters"
    return f"the label {label[:63]!r} has characters other than letters, digits, - and _"


def ascii_host(host: str) -> str:
    """The ASCII form of ``host`` (a URL's host without brackets) for DNS, ``Host`` and SNI.

    Raises :class:`InvalidHostError` when it has none: a label IDNA 2008 refuses (e.g. an
    emoji), an empty label, a label over 63 characters, a name over 253, or an ASCII
    label with a character other than letters, digits, ``-`` and ``_``.
    """
    if host.isascii():
        name = host.lower()
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            return name  # an IP address
        labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
        for label in labels:
            if not _ASCII_LABEL.fullmatch(label):
                raise InvalidHostError(_label_problem(label))
        if len(name) - name.endswith(".") > MAX_NAME_LENGTH:
            raise InvalidHostError(f"a name longer than {MAX_NAME_LENGTH} characters")
        return name
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidHostError(f"not a name under IDNA 2008 and UTS #46: {exc}") from None
