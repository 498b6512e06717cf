"""Signed session cookies, the CSRF token of each session, and known-browser cookies.

A session is stateless: the cookie holds ``{sid, user, iat, exp, seen}`` as base64url
JSON, followed by an HMAC-SHA256 signature made with the console's key. Everything
that ends a session is inside the signed value, so no restart (which forgets the
revocation list) and no activity can extend it:

* ``exp``: an absolute expiry, set once when the session is issued (``iat``): at most
  :data:`MAX_SIGNED_IN_SECONDS` after signing in.
* ``seen``: the last activity the cookie records; a signed-in session unused for
  :data:`IDLE_SECONDS` ends. Activity re-issues the cookie with a new ``seen`` (at most
  once every :data:`REFRESH_SECONDS`), never a new ``exp``.

A visitor who has not signed in gets an anonymous session (``user`` None) so that the
sign-in form carries a CSRF token too. Signing in issues a new session id (no session
fixation); signing out revokes the id in memory until it expires — and, whatever the
server remembers, the cookie stops working when it is idle or expired. The CSRF token
is an HMAC of the session id, so it never has to be stored.

A known-browser cookie (``{did, user, exp}``, signed for another purpose) is given
on signing in; the sign-in limiter counts that browser's failures on their own
(:mod:`~stream_wfm.console.ratelimit`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

COOKIE_NAME: Final = "stream_wfm_console"
DEVICE_COOKIE_NAME: Final = "stream_wfm_console_device"
MAX_SIGNED_IN_SECONDS: Final = 12 * 3600
IDLE_SECONDS: Final = 30 * 60
REFRESH_SECONDS: Final = 60
ANONYMOUS_SECONDS: Final = 2 * 3600
DEVICE_SECONDS: Final = 30 * 24 * 3600
MAX_REVOKED: Final = 10_000
#: How far ahead of this server's clock a signed time may be (another instance's clock).
CLOCK_SKEW: Final = 60


@dataclass(frozen=True, slots=True)
class Session:
    """``user`` is None until the visitor signs in; times are unix seconds: ``issued``,
    the absolute ``expires``, and ``seen`` (the last activity)."""

    sid: str
    user: str | None
    issued: int
    expires: int
    seen: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _ints(data: dict[str, Any], *names: str) -> tuple[int, ...] | None:
    """The values of ``names``, when every one is an int."""
    values = tuple(data.get(name) for name in names)
    ints = tuple(v for v in values if type(v) is int)
    return ints if len(ints) == len(values) else None


class SessionCodec:
    """Creates, signs and verifies sessions with one key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock
        self._revoked: dict[str, int] = {}

    def now(self) -> float:
        return self._clock()

    def _sign(self, payload: str, purpose: bytes = b"session:") -> str:
        return _b64(hmac.new(self._key, purpose + payload.encode(), hashlib.sha256).digest())

    def _encode(self, data: dict[str, Any], purpose: bytes) -> str:
        payload = _b64(orjson.dumps(data))
        return f"{payload}.{self._sign(payload, purpose)}"

    def _decode(self, cookie: str | None, purpose: bytes) -> dict[str, Any] | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload, purpose).encode()):
            return None
        try:
            data = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def anonymous(self) -> Session:
        now = int(self._clock())
        return Session(secrets.token_urlsafe(18), None, now, now + ANONYMOUS_SECONDS, now)

    def signed_in(self, user: str) -> Session:
        now = int(self._clock())
        return Session(secrets.token_urlsafe(18), user, now, now + MAX_SIGNED_IN_SECONDS, now)

    def touch(self, session: Session) -> Session | None:
        """The signed-in ``session`` with this moment as its last activity, when its cookie
        is due to be re-issued; None otherwise (and for anonymous sessions)."""
        now = int(self._clock())
        if session.user is None or now - session.seen < REFRESH_SECONDS:
            return None
        return replace(session, seen=now)

    def dump(self, session: Session) -> str:
        data = {
            "sid": session.sid,
            "user": session.user,
            "iat": session.issued,
            "exp": session.expires,
            "seen": session.seen,
        }
        return self._encode(data, b"session:")

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when it is missing, forged, expired, idle or
        revoked."""
        data = self._decode(cookie, b"session:")
        if data is None:
            return None
        sid, user, times = data.get("sid"), data.get("user"), _ints(data, "iat", "exp", "seen")
        if type(sid) is not str or times is None or (user is not None and type(user) is not str):
            return None
        issued, expires, seen = times
        now = self._clock()
        lifetime = ANONYMOUS_SECONDS if user is None else MAX_SIGNED_IN_SECONDS
        if not (issued <= seen <= now + CLOCK_SKEW and expires - issued <= lifetime):
            return None
        if expires <= now or (user is not None and seen + IDLE_SECONDS <= now):
            return None
        if sid in self._revoked:
            return None
        return Session(sid, user, issued, expires, seen)

    def revoke(self, session: Session) -> None:
        """Refuse this session id from now on (sign-out), in this process."""
        now = self._clock()
        if len(self._revoked) >= MAX_REVOKED:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
            # Still full of valid ones: forget the oldest tenth (a cookie forgotten here still
            # ends at its idle limit or expiry, like one revoked before a restart).
            oldest = len(self._revoked) - (MAX_REVOKED - MAX_REVOKED // 10)
            for sid in list(itertools.islice(self._revoked, max(0, oldest))):
                del self._revoked[sid]
        self._revoked[session.sid] = session.expires

    def revoked_count(self) -> int:
        return len(self._revoked)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, b"csrf:" + session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def device_cookie(self, user: str) -> str:
        """A new known-browser cookie for ``user``."""
        data = {
            "did": secrets.token_urlsafe(18),
            "user": user,
            "exp": int(self._clock()) + DEVICE_SECONDS,
        }
        return self._encode(data, b"device:")

    def device_of(self, cookie: str | None, user: str) -> str | None:
        """The browser id of a valid known-browser cookie of ``user``, or None."""
        data = self._decode(cookie, b"device:")
        if data is None:
            return None
        did, expires = data.get("did"), data.get("exp")
        if type(did) is not str or type(expires) is not int or data.get("user") != user:
            return None
        return did if self._clock() < expires <= self._clock() + DEVICE_SECONDS else None
