"""A new signing secret, shown once on the page the browser is sent to after the save.

A signing button's POST writes the config and answers with a redirect (so a reload never
posts again); the page it leads to shows the new secret once. Between the two the secret
waits here, in this console's memory only, under a random one-time token that the
redirect carries (never the secret), bound to the session and the account that made it:
another session, another account, a second visit or a token older than
:data:`REVEAL_SECONDS` gets nothing. Secrets left untaken are dropped when they expire
(and beyond :data:`MAX_WAITING`, the oldest first).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_WAITING", "REVEAL_SECONDS", "Reveals"]

#: How long a new secret waits for its page.
REVEAL_SECONDS: Final = 300.0
#: At most this many secrets wait at once.
MAX_WAITING: Final = 1000


class Reveals:
    """New secrets waiting to be shown once (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # token → (session id, account id, secret, expiry), oldest first
        self._waiting: OrderedDict[str, tuple[str, str, str, float]] = OrderedDict()

    def __repr__(self) -> str:  # never the secrets
        return f"Reveals(waiting={len(self._waiting)})"

    def _expire(self, now: float) -> None:
        waiting = self._waiting
        while waiting and (len(waiting) > MAX_WAITING or next(iter(waiting.values()))[3] <= now):
            waiting.popitem(last=False)

    def put(self, session_id: str, account_id: str, secret: str) -> str:
        """Keep ``secret`` for one showing to ``session_id`` on ``account_id``'s page; the
        token to put in that page's URL."""
        now = self._clock()
        token = secrets.token_urlsafe(16)
        self._waiting[token] = (session_id, account_id, secret, now + REVEAL_SECONDS)
        self._expire(now)
        return token

    def take(self, session_id: str, account_id: str, token: str) -> str | None:
        """The secret kept under ``token`` for this session and account, once; else None."""
        self._expire(self._clock())
        found = self._waiting.get(token)
        if found is None or found[:2] != (session_id, account_id):
            return None
        del self._waiting[token]
        return found[2]
