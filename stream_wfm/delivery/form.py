"""The URL-encoded payload (docs/contract.md §5): form encoding exactly as
``urllib.parse.urlencode`` does, fast.

Values: null → the empty string, strings as they are, booleans ``true``/``false``,
numbers as Python prints them, objects and arrays as compact JSON; then each name and
value is quoted as ``quote_plus(text, safe="")`` quotes it: letters, digits and ``_.-~``
stay, a space becomes ``+``, every other byte of the UTF-8 encoding becomes ``%XX``.

:func:`form_query` encodes an event's payload by its shape's
:class:`~stream_wfm.delivery.payload.Plan`. The fast way, for an event whose values are
all ASCII strings, costs a few C calls per event rather than a few per field: an
``itemgetter`` for the fields present and the query's parts (``name=`` after ``&``, with
a place for each value) are made once per set of fields present and kept; a copy of the
parts gets the values by one slice assignment and is joined (~4k instructions for 14
values; % formatting, ~7k). The values go in raw, then each character that needs
quoting is replaced across the whole query (one ``str.replace`` per distinct character,
~1.4k each): the names and the ``=`` and ``&`` between them hold none of those, so that
is ``quote_plus`` of each value (``%`` first, as the others bring some, and space last,
after ``+``). A value with ``&`` or ``=``, non-ASCII text or a value that is not a
string takes the per-field way, :func:`form_quote` of :func:`query_value` per field.
Tests hold both ways equal to ``urlencode``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import Any, Final
from urllib.parse import quote_plus

import orjson

from stream_wfm.delivery.payload import Plan
from stream_wfm.events import AGENT_LOGIN_FIELDS, AGENT_STATE_FIELDS, CALL_FIELDS

__all__ = ["form_query", "form_quote", "query_value"]

# A regex finds the (many) values that need no quoting; for ASCII text one
# str.translate does the rest; quoted values are cached, since dates, user names and
# queue names repeat across events.
_NEEDS_QUOTING: Final = re.compile(r"[^A-Za-z0-9_.\-~]").search
_ASCII_QUOTES: Final = {
    code: ("+" if code == 0x20 else f"%{code:02X}")
    for code in range(128)
    if _NEEDS_QUOTING(chr(code)) is not None
}
# For str.translate: every ASCII code, the safe ones mapped to themselves. A code the
# table lacks costs translate a KeyError raised and cleared inside, for each such
# character after the first one quoted: ~9k instructions for a date-time, ~5.5k without.
_ASCII_TABLE: Final = {code: _ASCII_QUOTES.get(code, code) for code in range(128)}
_QUOTE_CACHE: dict[str, str] = {}
_QUOTE_CACHE_SIZE: Final = 4096
_QUOTE_CACHE_MAX_LENGTH: Final = 128


def form_quote(text: str) -> str:
    """``urllib.parse.quote_plus(text, safe="")``, faster."""
    if _NEEDS_QUOTING(text) is None:
        return text
    quoted = _QUOTE_CACHE.get(text)
    if quoted is None:
        quoted = text.translate(_ASCII_TABLE) if text.isascii() else quote_plus(text, safe="")
        if len(text) <= _QUOTE_CACHE_MAX_LENGTH:
            if len(_QUOTE_CACHE) >= _QUOTE_CACHE_SIZE:
                _QUOTE_CACHE.clear()
            _QUOTE_CACHE[text] = quoted
    return quoted


def query_value(value: Any) -> str:
    """A payload value as it goes into the query string (before percent-encoding)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    return orjson.dumps(value).decode()


#: ``name=`` as it starts each pair of the query, for every payload field name.
_PAIR_PREFIXES: Final = {
    name: form_quote(name) + "="
    for name in (*AGENT_LOGIN_FIELDS, *AGENT_STATE_FIELDS, *CALL_FIELDS)
}
#: The payload field names that need no quoting (all of them): a shape's parts hold none
#: of the characters its values' quoting replaces.
_PLAIN_NAMES: Final = frozenset(name for name in _PAIR_PREFIXES if _NEEDS_QUOTING(name) is None)

_Getter = Callable[[dict[str, Any]], tuple[str, ...]]
#: The fast way's getter and parts (None, [] where it does not fit), by the fields present:
#: shapes that differ only in keys beyond the payload's share them.
_Form = tuple[_Getter | None, list[str]]
_FORMS: dict[tuple[str, ...], _Form] = {}
_FORM_CACHE_SIZE: Final = 1024
#: The bytes quote_plus leaves as they are: deleted, what is left needs quoting.
_SAFE_BYTES: Final = bytes(code for code in range(128) if code not in _ASCII_QUOTES)
#: Each other ASCII code but ``%``, space, ``&`` and ``=``: the character and its quoting.
_REPLACEMENTS: Final = {
    code: (chr(code), quoted) for code, quoted in _ASCII_QUOTES.items() if chr(code) not in "% &="
}
_PERCENT: Final = ord("%")
_SPACE: Final = ord(" ")
_AMPERSAND: Final = ord("&")
_EQUALS: Final = ord("=")


def _form(present: tuple[str, ...]) -> _Form:
    """The fast way's getter and parts for events with the fields ``present``; none when
    it does not fit: fewer than two fields (an itemgetter of one gives no tuple) or a
    name that needs quoting."""
    made = _FORMS.get(present)
    if made is None:
        if len(present) < 2 or not _PLAIN_NAMES.issuperset(present):
            made = None, []
        else:
            parts: list[str] = []
            for name in present:
                parts += ("&" + _PAIR_PREFIXES[name] if parts else _PAIR_PREFIXES[name], "")
            made = itemgetter(*present), parts
        if len(_FORMS) >= _FORM_CACHE_SIZE:
            _FORMS.clear()
        _FORMS[present] = made
    return made


def form_query(data: dict[str, Any], plan: Plan) -> str:
    """The form-encoded payload of the decoded event ``data`` of ``plan``'s shape: the fast
    way when its values are ASCII strings without ``&`` or ``=``, else per field."""
    form = plan.form
    if form is None:
        form = plan.form = _form(plan.present)
    getter = form[0]
    if getter is not None:
        values = getter(data)
        try:
            joined = "".join(values)
        except TypeError:  # a value that is not a string
            return _pairs(data, plan.present)
        if joined.isascii():
            parts = form[1].copy()
            parts[1::2] = values
            query = "".join(parts)
            unsafe = joined.encode().translate(None, _SAFE_BYTES)
            if not unsafe:
                return query
            found = set(unsafe)
            if _AMPERSAND not in found and _EQUALS not in found:
                if _PERCENT in found:
                    query = query.replace("%", "%25")
                for code in found:
                    replacement = _REPLACEMENTS.get(code)
                    if replacement is not None:
                        query = query.replace(*replacement)
                if _SPACE in found:
                    query = query.replace(" ", "+")
                return query
    return _pairs(data, plan.present)


def _pairs(data: dict[str, Any], present: tuple[str, ...]) -> str:
    """The per-field way: ``name=value`` for each field present, :func:`form_quote` of
    :func:`query_value` with their common case (a string that needs no quoting) inline."""
    pairs = []
    for name in present:
        value = data[name]
        text = value if type(value) is str else query_value(value)
        if _NEEDS_QUOTING(text) is not None:
            text = form_quote(text)
        pairs.append(_PAIR_PREFIXES[name] + text)
    return "&".join(pairs)
