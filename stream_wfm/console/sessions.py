"""Signed session cookies and the CSRF token of each session.

A session is stateless: the cookie holds ``{sid, user, exp}`` as base64url
JSON, followed by an HMAC-SHA256 signature made with the console's key. A
visitor who has not signed in gets an anonymous session (``user`` None) so
that the sign-in form carries a CSRF token too. Signing in issues a new
session id (no session fixation); signing out revokes the id until it expires.
The CSRF token is an HMAC of the session id, so it never has to be stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

COOKIE_NAME: Final = "stream_wfm_console"
SIGNED_IN_SECONDS: Final = 8 * 3600
ANONYMOUS_SECONDS: Final = 2 * 3600
MAX_REVOKED: Final = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    """``user`` is None until the visitor signs in; ``expires`` is unix seconds."""

    sid: str
    user: str | None
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Creates, signs and verifies sessions with one key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock
        self._revoked: dict[str, int] = {}

    def now(self) -> float:
        return self._clock()

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, b"session:" + payload.encode(), hashlib.sha256).digest())

    def anonymous(self) -> Session:
        return Session(secrets.token_urlsafe(18), None, int(self._clock()) + ANONYMOUS_SECONDS)

    def signed_in(self, user: str) -> Session:
        return Session(secrets.token_urlsafe(18), user, int(self._clock()) + SIGNED_IN_SECONDS)

    def dump(self, session: Session) -> str:
        payload = _b64(
            orjson.dumps({"sid": session.sid, "user": session.user, "exp": session.expires})
        )
        return f"{payload}.{self._sign(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when it is missing, forged, expired or revoked."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            data = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        sid, user, expires = data.get("sid"), data.get("user"), data.get("exp")
        if type(sid) is not str or type(expires) is not int:
            return None
        if user is not None and type(user) is not str:
            return None
        if expires <= self._clock() or sid in self._revoked:
            return None
        return Session(sid, user, expires)

    def revoke(self, session: Session) -> None:
        """Refuse this session id from now on (sign-out)."""
        now = self._clock()
        if len(self._revoked) >= MAX_REVOKED:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.sid] = session.expires

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, b"csrf:" + session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())
