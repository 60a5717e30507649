"""The per-account request rate in leases (admin_api/rate_limit.py), on the real Redis.

Two RateLimiters stand for two API workers sharing one Redis count; the clock is theirs
to be given, so a "second" is whatever the test says (no sleeps, no second boundaries
falling mid-test). The gunicorn-served check (several real workers, 429 past the limit)
is tests/api/test_quotas.py."""
from __future__ import annotations

import pytest

from admin_api.rate_limit import _LEASE_LUA, RateLimiter
from trunx import redis_schema
from trunx.errors import TooMany


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _passes(limiter, account="acct", limit=100, n=1) -> int:
    passed = 0
    for _ in range(n):
        try:
            limiter.check(account, limit)
            passed += 1
        except TooMany as exc:
            assert exc.code == "rate-limited"
            assert exc.details == {"limit_per_second": limit, "retry_after": 1}
    return passed


def test_one_worker_passes_exactly_the_limit_and_asks_redis_less_as_it_gets_busy(redis):
    clock = Clock()
    limiter = RateLimiter(redis, clock=clock)
    key = redis_schema.rate_key("acct", int(clock.now))
    assert _passes(limiter, limit=100, n=150) == 100
    assert int(redis.get(key)) == 100            # every pass was counted in Redis
    # the next second: leases sized by the 150 requests seen, so far fewer round trips
    clock.now += 1
    calls = []
    original = limiter._script
    limiter._script = lambda **kw: calls.append(kw) or original(**kw)
    assert _passes(limiter, limit=10_000, n=900) == 900
    assert len(calls) < 900 // 4, len(calls)
    assert int(redis.get(redis_schema.rate_key("acct", int(clock.now)))) <= 10_000


def test_two_workers_never_pass_more_than_the_limit_together(redis):
    clock = Clock()
    a, b = RateLimiter(redis, clock=clock), RateLimiter(redis, clock=clock)
    # both busy the second before, so both lease in batches this second
    _passes(a, limit=10_000, n=400)
    _passes(b, limit=10_000, n=400)
    clock.now += 1
    passed = 0
    for _ in range(300):
        passed += _passes(a, limit=200) + _passes(b, limit=200)
    # both spending what they lease: the whole budget passes, and not one more
    assert passed == 200
    # one worker leases and goes idle: its unspent lease is all the other loses
    clock.now += 1
    assert _passes(b, limit=200) == 1
    stranded = b._accounts["acct"].left
    assert 0 < stranded <= 200 // 4
    assert _passes(a, limit=200, n=300) == 200 - 1 - stranded


def test_a_spent_second_is_refused_without_redis_and_the_next_second_passes(redis):
    clock = Clock()
    limiter = RateLimiter(redis, clock=clock)
    assert _passes(limiter, limit=3, n=3) == 3
    with pytest.raises(TooMany):
        limiter.check("acct", 3)
    limiter._script = None     # a refusal in a spent second asks Redis nothing
    with pytest.raises(TooMany):
        limiter.check("acct", 3)
    limiter._script = redis.register_script(_LEASE_LUA)
    clock.now += 1
    assert _passes(limiter, limit=3, n=1) == 1
    # another account has its own budget
    assert _passes(limiter, account="other", limit=3, n=3) == 3


def test_no_limit_asks_nothing(redis):
    limiter = RateLimiter(redis, clock=Clock())
    limiter._script = None
    assert _passes(limiter, limit=0, n=10) == 10
