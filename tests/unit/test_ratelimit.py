"""The console's sign-in limiter: per user name, per client address (IPv6 by /64),
per known browser and overall; a delay that grows with failures and decays; bounded
tables. A fake clock: no sleeps."""

from __future__ import annotations

import pytest

from stream_wfm.console.ratelimit import (
    ADDRESS_RULE,
    MAX_KEYS,
    OVERALL_RULE,
    USER_RULE,
    Attempt,
    Rule,
    SignInLimiter,
    address_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fail(limiter: SignInLimiter, attempt: Attempt, times: int) -> None:
    for _ in range(times):
        limiter.failure(attempt)


def test_no_delay_for_the_first_failures_then_it_doubles_up_to_a_cap() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    attempt = Attempt(user="admin", address="192.0.2.1")
    _fail(limiter, attempt, USER_RULE.free - 1)
    assert limiter.retry_after(attempt) is None
    delays = []
    for _ in range(12):
        limiter.failure(attempt)
        delays.append(limiter.retry_after(attempt))
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert max(d or 0 for d in delays) == ADDRESS_RULE.cap  # never longer
    clock.now += ADDRESS_RULE.cap
    assert limiter.retry_after(attempt) is None  # a delay, never a lock-out


def test_failures_decay_so_an_old_burst_stops_counting() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    attempt = Attempt(user="admin", address="192.0.2.1")
    _fail(limiter, attempt, 10)
    assert limiter.retry_after(attempt) == pytest.approx(32.0)
    clock.now += 10 * USER_RULE.half_life  # 10 failures decay to ~0.01
    limiter.failure(attempt)
    assert limiter.retry_after(attempt) is None


def test_a_user_name_is_limited_whatever_the_address() -> None:
    limiter = SignInLimiter(clock=Clock())
    for i in range(USER_RULE.free):
        limiter.failure(Attempt(user="admin", address=f"198.51.100.{i}"))
    assert limiter.retry_after(Attempt(user="admin", address="203.0.113.50")) == 1.0
    assert limiter.retry_after(Attempt(user="Admin", address="203.0.113.50")) == 1.0
    assert limiter.retry_after(Attempt(user="someone", address="203.0.113.50")) is None


def test_an_address_is_limited_whatever_the_user_name() -> None:
    limiter = SignInLimiter(clock=Clock())
    for i in range(ADDRESS_RULE.free):
        limiter.failure(Attempt(user=f"user-{i}", address="192.0.2.7"))
    assert limiter.retry_after(Attempt(user="admin", address="192.0.2.7")) == 1.0
    assert limiter.retry_after(Attempt(user="admin", address="192.0.2.8")) is None


def test_ipv6_addresses_of_one_slash_64_count_as_one_client() -> None:
    limiter = SignInLimiter(clock=Clock())
    for i in range(ADDRESS_RULE.free):
        limiter.failure(Attempt(user=f"user-{i}", address=f"2001:db8:1:2:{i:x}::{i + 1:x}"))
    assert limiter.retry_after(Attempt(user="x", address="2001:db8:1:2:ffff::1")) == 1.0
    assert limiter.retry_after(Attempt(user="x", address="2001:db8:1:3::1")) is None
    assert address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("unknown") == "unknown"


def test_failures_from_everywhere_add_up_to_an_overall_delay() -> None:
    limiter = SignInLimiter(clock=Clock())
    for i in range(OVERALL_RULE.free):
        limiter.failure(Attempt(user=f"user-{i}", address=f"10.{i // 250}.{i % 250}.1"))
    fresh = Attempt(user="admin", address="203.0.113.1")
    assert limiter.retry_after(fresh) == 1.0


def test_a_known_browser_is_limited_on_its_own() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    _fail(limiter, Attempt(user="admin", address="192.0.2.1"), 20)  # someone else
    known = Attempt(user="admin", address="192.0.2.1", device="d-1")
    assert limiter.retry_after(known) is None
    _fail(limiter, known, 5)  # but it cannot guess freely either
    assert limiter.retry_after(known) == 1.0
    assert limiter.retry_after(Attempt(user="admin", address="192.0.2.1", device="d-2")) is None


def test_success_forgets_the_address_and_the_browser_but_not_the_user_name() -> None:
    limiter = SignInLimiter(clock=Clock())
    attempt = Attempt(user="admin", address="192.0.2.1")
    _fail(limiter, attempt, 5)
    limiter.success(attempt)
    assert limiter.retry_after(Attempt(user="other", address="192.0.2.1")) is None
    assert limiter.retry_after(Attempt(user="admin", address="192.0.2.9")) == 1.0


def test_every_table_stays_bounded_after_100_000_distinct_addresses_and_users() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    for i in range(100_000):
        limiter.failure(
            Attempt(
                user=f"user-{i}", address=f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::1", device=None
            )
        )
        limiter.failure(Attempt(user=f"known-{i}", address="192.0.2.1", device=f"device-{i}"))
        clock.now += 0.001
    assert all(size <= MAX_KEYS for size in limiter.sizes().values()), limiter.sizes()


def test_expired_entries_are_pruned() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock=clock)
    for i in range(1000):
        limiter.failure(Attempt(user=f"user-{i}", address=f"192.0.2.{i % 250}"))
    clock.now += 100 * USER_RULE.half_life
    limiter.failure(Attempt(user="late", address="203.0.113.1"))
    assert limiter.sizes() == {"address": 1, "user": 1, "device": 0, "overall": 1}


def test_a_rule_computes_its_delay() -> None:
    rule = Rule(free=3, base=0.5, cap=5.0, half_life=60.0)
    assert [rule.delay(n) for n in (1, 2, 3, 4, 5, 6, 100)] == [0, 0, 0.5, 1.0, 2.0, 4.0, 5.0]
