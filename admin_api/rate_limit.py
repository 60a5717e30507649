"""api_rate_limit: at most that many requests a second per account, across every API
worker and host, counted in Redis, without a Redis round trip per request.

The count is one Redis key per account and second (redis_schema.rate_key), as before. A
worker no longer adds 1 to it per request: it leases tokens, several at once, with one
script that grants only what is left of the second's budget, and spends them locally. So
no second ever passes more than the limit in total (a lease never exceeds the budget
left), and a worker taking many requests asks Redis about once per LEASE_DIVISOR-th of
its previous second's requests instead of every time (the GET /ivr/:id bench measured
the round trip at ~0.4 ms of CPU a request under gunicorn's threads).

What a lease may cost: tokens a worker leased and did not spend before the second ended
are lost to that second, so while an account is at its limit it may be refused a few
requests early. Leases are sized to keep that small: by the worker's own demand (a
worker that saw no requests of the account leases 1 at a time, which is exactly the old
count), and never more than a LEASE_SHARE-th of the budget left, so they shrink to 1 as
the budget runs out. Once Redis says the budget is spent the worker refuses the rest of
that second locally (the count only grows within a second).
"""
from __future__ import annotations

import threading
import time

from redis import exceptions as redis_errors

from trunx import redis_schema
from trunx.errors import TooMany

LEASE_DIVISOR = 16      # a busy worker asks Redis ~16 times a second per account
LEASE_SHARE = 4         # a lease takes at most a quarter of what the second has left
MAX_LEASE = 1024

# KEYS[1]: the account's count for this second; ARGV: tokens wanted, the limit, the
# share, the key's lifetime. Returns the tokens granted (0: the second's budget is spent).
_LEASE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = tonumber(ARGV[2]) - used
if left <= 0 then return 0 end
local grant = math.min(tonumber(ARGV[1]), math.max(1, math.floor(left / tonumber(ARGV[3]))))
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return grant
"""


class _Account:
    __slots__ = ("second", "left", "spent", "seen", "last_seen")

    def __init__(self):
        self.second = -1      # the second the tokens below belong to
        self.left = 0         # leased and not yet spent
        self.spent = False    # Redis said this second's budget is gone
        self.seen = 0         # requests this worker saw in `second`
        self.last_seen = 0    # ... and in the second before it


class RateLimiter:
    """One per API worker process (create_app makes it); thread-safe."""

    def __init__(self, redis, clock=time.time, max_accounts: int = 10_000):
        self._redis = redis
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._max_accounts = max_accounts
        self._script = redis.register_script(_LEASE_LUA)

    def check(self, account_id: str, limit: int) -> None:
        """Count one request of the account; TooMany("rate-limited") past the limit."""
        if limit <= 0:
            return
        second = int(self._clock())
        with self._lock:
            state = self._accounts.get(account_id)
            if state is None:
                if len(self._accounts) >= self._max_accounts:
                    self._accounts.clear()     # idle accounts' state is only a size hint
                state = self._accounts[account_id] = _Account()
            if state.second != second:
                state.last_seen = state.seen if state.second == second - 1 else 0
                state.second, state.left, state.spent, state.seen = second, 0, False, 0
            state.seen += 1
            if state.left > 0:
                state.left -= 1
                return
            if state.spent:
                raise _refused(limit)
            want = min(MAX_LEASE, max(1, max(state.last_seen, state.seen) // LEASE_DIVISOR))
        try:
            granted = int(self._script(keys=[redis_schema.rate_key(account_id, second)],
                                       args=[want, limit, LEASE_SHARE, 2]))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            return     # Redis down: requests that need it answer 503 anyway; the rest go on
        with self._lock:
            if state.second == second:
                if granted <= 0:
                    state.spent = True
                else:
                    state.left += granted - 1
        if granted <= 0:
            raise _refused(limit)


def _refused(limit: int) -> TooMany:
    return TooMany("rate-limited", f"more than {limit} requests per second for this "
                   "account; slow down", {"limit_per_second": limit, "retry_after": 1})
