"""Slowing down password guessing at sign-in, without a lock-out anyone can trigger.

Every wrong password counts against several keys, each with its own :class:`Rule`:

* the **user name** typed (case-insensitive): guessing one account's password is slow
  whatever addresses the guesses come from;
* the **client address** (:func:`address_key`: IPv6 by /64, since one host commonly
  has a whole /64 to rotate through);
* **overall**: all failures together, against guesses spread over many names and
  addresses;
* a **known browser** instead of all three, when the attempt carries a valid
  known-browser cookie of that user name (given on signing in): its failures count on
  their own, and other clients' failures never delay it, so an attacker cannot keep the
  administrator out of a browser they used before.

A key's failures decay (half of them are forgotten every ``half_life`` seconds). After
``free`` of them, each failure sets a delay that doubles from ``base`` up to ``cap``;
until it has passed, sign-ins that count against that key are refused (HTTP 429 with
``Retry-After``) without checking the password, and refused attempts do not count. Once
the delay has passed, the right password signs in. A success forgets the address's and
the browser's failures, not the user name's.

Each table holds at most :data:`MAX_KEYS` keys: entries whose delay has passed and whose
failures have decayed below one are pruned as new ones arrive, and beyond that the least
recently failed key is forgotten. The clock is injected, so tests need no sleeps.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

MAX_KEYS: Final = 10_000
#: Longer user names are cut to this before they are used as a key.
MAX_USER_KEY: Final = 256
_OVERALL: Final = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    """``free`` failures without delay; then ``base`` seconds, doubling, at most ``cap``."""

    free: int
    base: float
    cap: float
    half_life: float

    def delay(self, failures: float) -> float:
        """The delay after ``failures`` (decayed) failures."""
        if failures < self.free:
            return 0
        return min(self.cap, self.base * math.exp2(min(failures - self.free, 64.0)))


USER_RULE: Final = Rule(free=5, base=1.0, cap=30.0, half_life=300.0)
ADDRESS_RULE: Final = Rule(free=5, base=1.0, cap=60.0, half_life=300.0)
OVERALL_RULE: Final = Rule(free=50, base=1.0, cap=10.0, half_life=300.0)
DEVICE_RULE: Final = Rule(free=5, base=1.0, cap=60.0, half_life=300.0)


def address_key(address: str) -> str:
    """The key of a client address: an IPv4 address (IPv4-mapped IPv6 included) as it is,
    an IPv6 address as its /64, anything else as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One sign-in attempt: the user name typed, the client address and, when the attempt
    carries a valid known-browser cookie of that user name, the browser's id."""

    user: str
    address: str
    device: str | None = None


@dataclass(slots=True)
class _Entry:
    failures: float
    at: float  # when ``failures`` was last updated
    until: float  # no attempt before this


class _Table:
    """One rule's keys, least recently failed first."""

    def __init__(self, rule: Rule, max_keys: int) -> None:
        self.rule = rule
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _decayed(self, entry: _Entry, now: float) -> float:
        return entry.failures * math.exp2(-max(0.0, now - entry.at) / self.rule.half_life)

    def wait(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        return 0.0 if entry is None else max(0.0, entry.until - now)

    def failure(self, key: str, now: float) -> None:
        entry = self._entries.pop(key, None)
        failures = 1.0 if entry is None else self._decayed(entry, now) + 1
        self._entries[key] = _Entry(failures, now, now + self.rule.delay(failures))
        self._prune(now)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, oldest = next(iter(entries.items()))
            spent = oldest.until <= now and self._decayed(oldest, now) < 1
            if not spent and len(entries) <= self._max_keys:
                return
            del entries[key]


class SignInLimiter:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._tables = {
            "address": _Table(ADDRESS_RULE, max_keys),
            "user": _Table(USER_RULE, max_keys),
            "device": _Table(DEVICE_RULE, max_keys),
            "overall": _Table(OVERALL_RULE, 1),
        }

    def _keys(self, attempt: Attempt) -> list[tuple[_Table, str]]:
        tables = self._tables
        if attempt.device is not None:
            return [(tables["device"], attempt.device)]
        return [
            (tables["address"], address_key(attempt.address)),
            (tables["user"], attempt.user.casefold()[:MAX_USER_KEY]),
            (tables["overall"], _OVERALL),
        ]

    def retry_after(self, attempt: Attempt) -> float | None:
        """Seconds until ``attempt`` may be made, or None when it may be made now."""
        now = self._clock()
        wait = max(table.wait(key, now) for table, key in self._keys(attempt))
        return wait if wait > 0 else None

    def failure(self, attempt: Attempt) -> None:
        now = self._clock()
        for table, key in self._keys(attempt):
            table.failure(key, now)

    def success(self, attempt: Attempt) -> None:
        if attempt.device is not None:
            self._tables["device"].forget(attempt.device)
        else:
            self._tables["address"].forget(address_key(attempt.address))

    def sizes(self) -> dict[str, int]:
        """How many keys each table holds."""
        return {name: len(table) for name, table in self._tables.items()}


def seconds_text(wait: float) -> int:
    """``wait`` in whole seconds, rounded up, for ``Retry-After`` and the page."""
    return max(1, math.ceil(wait - 1e-9))
