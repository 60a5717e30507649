"""The calls-per-second pace every engine shares, kept in Redis, and each account's own.

One Lua script reserves the next free slot: the shared one (`originate_cps` for all
engines together) and, for an account with its own `calls_per_second`, the account's.
Redis's own clock (TIME) decides, so engines on hosts whose clocks differ still share one
pace. The script answers how long to wait for the slot it reserved; or, when the account
itself is not due yet, reserves nothing and answers how long until it is, so the dialer
gives another account the turn instead of sleeping on this one.
"""
from __future__ import annotations

from trunx import redis_schema

# KEYS[1] the shared pace, KEYS[2] the account's. ARGV: the shared interval and the
# account's (seconds; 0: no limit). Answers {1, wait} (reserved) or {0, due_in}.
# Slot times are strings: a Lua number in a reply would be cut to an integer.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local shared, own = tonumber(ARGV[1]), tonumber(ARGV[2])
if own > 0 then
  local due = tonumber(redis.call('GET', KEYS[2]) or '0')
  if due > now then return {0, tostring(due - now)} end
end
local slot = now
if shared > 0 then
  local free = tonumber(redis.call('GET', KEYS[1]) or '0')
  if free > slot then slot = free end
  redis.call('SET', KEYS[1], tostring(slot + shared), 'EX', 3600)
end
if own > 0 then
  redis.call('SET', KEYS[2], tostring(slot + own), 'EX', 3600)
end
return {1, tostring(slot - now)}
"""


class SharedPace:
    def __init__(self, redis, cps: float):
        self.cps = float(cps)
        self._reserve = redis.register_script(RESERVE)

    async def reserve(self, account: str, account_cps: float) -> tuple[bool, float]:
        """(True, wait): a slot is ours `wait` seconds from now. (False, due_in): the
        account is not due for that long; nothing was reserved."""
        shared = 1.0 / self.cps if self.cps > 0 else 0.0
        own = 1.0 / account_cps if account and account_cps > 0 else 0.0
        if not shared and not own:
            return True, 0.0
        ok, seconds = await self._reserve(
            keys=[redis_schema.PACE_KEY, redis_schema.account_pace_key(account or "-")],
            args=[shared, own])
        return bool(int(ok)), max(0.0, float(seconds))
