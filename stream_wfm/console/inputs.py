"""Numbers from request input (form fields and query parameters), strictly.

Python's ``int()`` and ``float()`` accept any Unicode decimal digit (``"١٢"`` is 12),
underscores and surrounding spaces, and ``int()`` raises on more than 4300 digits;
``str.isdigit()`` is true for ``"²"``, which ``int()`` refuses. Every number the
console reads from a request goes through here instead: ASCII digits only, a bounded
length, and None (never an exception) for anything else.
"""

from __future__ import annotations

import re
from typing import Final

_INTEGER: Final = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def strict_int(text: str, *, max_digits: int) -> int | None:
    """``text`` as an int when it is an optional ``-`` and 1 to ``max_digits`` ASCII digits."""
    digits = len(text) - text.startswith("-")
    if digits > max_digits or not _INTEGER.fullmatch(text):
        return None
    return int(text)


def strict_number(text: str, *, max_chars: int) -> int | float | None:
    """``text`` as a number when it is an optional ``-``, ASCII digits and an optional
    fraction, at most ``max_chars`` characters; an integral value as an int."""
    if len(text) > max_chars or not _DECIMAL.fullmatch(text):
        return None
    number = float(text)
    return int(number) if number.is_integer() else number
