"""Each account's own outbound limits, as the dialer needs them on every call.

`max_concurrent_calls` (calls ringing or answered at once, on all engines together;
unset: the config's) and `calls_per_second` (unset or 0: only the shared pace) are
account fields (PATCH /api/account). Read from the record and kept for `ttl` seconds, so
a change reaches every engine within that, at one query per account per `ttl`.
"""
from __future__ import annotations

import time

from trunx.models import Account

TTL = 5.0


class AccountLimits:
    def __init__(self, config, db, *, ttl: float = TTL):
        self.config = config
        self._db = db
        self.ttl = ttl
        self._cache: dict[str, tuple[float, int, float]] = {}   # id -> (read at, cap, cps)

    def cached(self, account: str) -> tuple[int, float]:
        """(cap, cps) as last read (the config's default before the first read)."""
        entry = self._cache.get(account)
        if entry is None:
            return int(self.config.max_concurrent_calls or 0), 0.0
        return entry[1], entry[2]

    async def get(self, account: str) -> tuple[int, float]:
        entry = self._cache.get(account)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1], entry[2]
        row = await self._db(_limits, account)
        cap, cps = row if row is not None else (None, None)
        most = int(self.config.max_concurrent_calls or 0)     # the operator's, per account
        cap = most if cap is None else (min(int(cap), most) if most > 0 else int(cap))
        entry = (time.monotonic(), cap, float(cps or 0.0))
        self._cache[account] = entry
        return entry[1], entry[2]


def _limits(account: str):
    return (Account.select(Account.max_concurrent_calls, Account.calls_per_second)
            .where(Account.id == account).tuples().first())
