"""Console sessions: signed cookies whose absolute expiry and idle limit are inside the
signed value, so neither a restart nor a lost revocation list extends them."""

from __future__ import annotations

import base64

import orjson

from stream_wfm.console.sessions import (
    IDLE_SECONDS,
    MAX_SIGNED_IN_SECONDS,
    REFRESH_SECONDS,
    SessionCodec,
)

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_cookie_stops_working_after_a_restart_once_idle() -> None:
    clock = Clock()
    before = SessionCodec(KEY, clock=clock)
    session = before.signed_in("admin")
    cookie = before.dump(session)
    before.revoke(session)  # sign-out
    assert before.load(cookie) is None
    after = SessionCodec(KEY, clock=clock)  # a restart forgets the revocation...
    clock.now += IDLE_SECONDS + 1
    assert after.load(cookie) is None  # ...but the cookie's own idle limit has passed


def test_activity_cannot_extend_a_session_past_its_maximum_lifetime() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    session = codec.signed_in("admin")
    issued = clock.now
    assert session.expires == int(issued) + MAX_SIGNED_IN_SECONDS
    cookie = codec.dump(session)
    while clock.now + IDLE_SECONDS / 2 < issued + MAX_SIGNED_IN_SECONDS:
        clock.now += IDLE_SECONDS / 2
        loaded = SessionCodec(KEY, clock=clock).load(cookie)  # a restart every time
        assert loaded is not None
        touched = codec.touch(loaded)
        assert touched is not None
        assert touched.expires == session.expires
        assert touched.seen == int(clock.now)
        cookie = codec.dump(touched)
    clock.now = issued + MAX_SIGNED_IN_SECONDS
    assert codec.load(cookie) is None


def test_a_session_is_refreshed_at_most_once_a_minute() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    session = codec.signed_in("admin")
    clock.now += REFRESH_SECONDS - 1
    assert codec.touch(session) is None
    clock.now += 1
    assert codec.touch(session) is not None
    assert codec.touch(codec.anonymous()) is None


def test_an_idle_session_ends() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    cookie = codec.dump(codec.signed_in("admin"))
    clock.now += IDLE_SECONDS - 1
    assert codec.load(cookie) is not None
    clock.now += 1
    assert codec.load(cookie) is None


def _signed(codec: SessionCodec, data: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    return f"{payload}.{codec._sign(payload)}"


def test_a_signed_value_claiming_a_longer_life_is_refused() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    now = int(clock.now)
    good = {"sid": "s", "user": "admin", "iat": now, "exp": now + 3600, "seen": now}
    assert codec.load(_signed(codec, good)) is not None
    for bad in (
        {**good, "exp": now + MAX_SIGNED_IN_SECONDS + 1},
        {**good, "iat": now + 120},  # issued in the future
        {**good, "seen": now - IDLE_SECONDS},
        {**good, "seen": now + 120},
        {"sid": "s", "user": "admin", "exp": now + 3600},  # the old format
    ):
        assert codec.load(_signed(codec, bad)) is None, bad


def test_revocations_stay_bounded() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    for _ in range(30_000):
        codec.revoke(codec.signed_in("admin"))
    assert codec.revoked_count() <= 10_000


def test_a_known_browser_cookie_names_its_user_and_expires() -> None:
    clock = Clock()
    codec = SessionCodec(KEY, clock=clock)
    cookie = codec.device_cookie("admin")
    device = codec.device_of(cookie, "admin")
    assert device is not None
    assert codec.device_of(cookie, "someone") is None
    assert SessionCodec(b"x" * 32, clock=clock).device_of(cookie, "admin") is None
    session_cookie = codec.dump(codec.signed_in("admin"))
    assert codec.device_of(session_cookie, "admin") is None  # not interchangeable
    assert codec.load(cookie) is None
    clock.now += 31 * 24 * 3600
    assert codec.device_of(cookie, "admin") is None
