"""Rate limiting of wrong sign-in passwords, per client address.

``max_failures`` wrong passwords within ``window`` seconds lock the address
out for ``lockout`` seconds; while locked out, every sign-in attempt from it is
refused (HTTP 429), right password or not. A successful sign-in forgets the
address's failures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

MAX_TRACKED_CLIENTS: Final = 10_000


class SignInLimiter:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        until = self._locked_until.get(client)
        if until is None:
            return None
        left = until - self._clock()
        if left > 0:
            return left
        del self._locked_until[client]
        return None

    def failure(self, client: str) -> None:
        now = self._clock()
        if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
            self._forget_stale(now)
        recent = self._failures.setdefault(client, deque())
        recent.append(now)
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        if len(recent) >= self._max_failures:
            self._locked_until[client] = now + self._lockout
            del self._failures[client]

    def success(self, client: str) -> None:
        self._failures.pop(client, None)

    def _forget_stale(self, now: float) -> None:
        self._failures = {
            client: times
            for client, times in self._failures.items()
            if times and times[-1] > now - self._window
        }
        self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}
        if len(self._failures) >= MAX_TRACKED_CLIENTS:
            oldest = min(self._failures, key=lambda c: self._failures[c][-1])
            del self._failures[oldest]
