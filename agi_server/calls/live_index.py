"""Which calls this engine holds, as the API sees them in Redis, written in batches.

A call's session says it is live (`trunx:live:{call}`, a hash with a TTL, plus its place
in the account's `trunx:live-calls:{account}` index), may change its status, and says it
is gone. None of that waits for Redis: each change is queued and one task writes the
queue, `delay` after the first change, then whatever queued meanwhile (group commit, as the
call records are). A batch is one Redis command, whatever its size: a Lua script
(`APPLY`) gets every change as one JSON argument and runs the HSET/EXPIRE/ZADD or
DEL/ZREM itself. As separate commands, redis-py's packing and reply parsing cost more
engine CPU per call than the rest of the call's bookkeeping. A call that starts and ends
before its announcement went out costs Redis nothing at all. Only announcements wait for
`delay`: a status change or a withdrawal (a transfer answered, the call over) is written
at once, since the API must stop taking actions for that call.

Per call the changes are kept in order (announce, update, withdraw), and batches are
written one after another, so Redis never sees a withdrawn call come back. A batch that
fails is logged and dropped; `refresh` (run by the engine's upkeep) writes every live
call again in full, which also brings them back after Redis lost its data.
"""
from __future__ import annotations

import asyncio
import json
import logging

from trunx import redis_schema

log = logging.getLogger(__name__)

# KEYS[1]: the engine's set of calls (trunx:engine:{id}:calls); then each change's hash
# key and its account's index, in pairs. ARGV[1]: the TTL; ARGV[2]: [{id, a: [field,
# value, ...] (announce), s: score, f: [...] (update), w: 1 (withdraw)}, ...] in the
# order of KEYS.
APPLY = """
local ttl = tonumber(ARGV[1])
local changes = cjson.decode(ARGV[2])
for i, c in ipairs(changes) do
  local key, index = KEYS[2 * i], KEYS[2 * i + 1]
  if c.a then
    redis.call('HSET', key, unpack(c.a))
    redis.call('EXPIRE', key, ttl)
    redis.call('ZADD', index, c.s, c.id)
    redis.call('SADD', KEYS[1], c.id)
  elseif c.f then
    redis.call('HSET', key, unpack(c.f))
  end
  if c.w then
    redis.call('DEL', key)
    redis.call('ZREM', index, c.id)
    redis.call('SREM', KEYS[1], c.id)
  end
end
return #changes
"""


_CHUNK = 500


class _Change:
    __slots__ = ("account", "announce", "fields", "since", "withdraw")

    def __init__(self, account: str):
        self.account = account
        self.announce: dict | None = None     # the full hash: (re)announce the call
        self.since = 0.0                      # its score in the account's index
        self.fields: dict = {}                # fields changed since
        self.withdraw = False


class LiveIndex:
    def __init__(self, redis, *, delay: float = 0.0, ttl: int = redis_schema.LIVE_TTL):
        self.redis = redis
        self.delay = delay        # seconds a change waits for others to share its script call
        self.ttl = ttl
        # the engine holding these calls: named in each hash (the API sends the call's
        # commands to its stream) and keeping the set of them (a dead engine's calls are
        # closed from it: agi_server.cluster.reclaim)
        self.engine = ""
        self.batches = 0          # script calls made
        self.failed = 0           # script calls that failed (their changes were dropped)
        self.live: dict[str, tuple[str, dict, float]] = {}   # id -> (account, hash, since)
        self._queue: dict[str, _Change] = {}
        self._writer: asyncio.Task | None = None
        self._urgent = False                  # a change the API must see now is queued
        self._nap: asyncio.Future | None = None   # the writer's `delay`, cut short by it
        self._apply = redis.register_script(APPLY)

    # -- changes (none of them waits) --------------------------------------------------
    def announce(self, call_id: str, account: str, fields: dict, since: float) -> None:
        """The call is live; `since` (epoch seconds) orders the account's index."""
        fields = dict(fields)         # ours from here on: update() changes it
        self.live[call_id] = (account, fields, since)
        self._announce(call_id, account, fields, since)

    def _announce(self, call_id, account, fields, since) -> None:
        change = self._change(call_id, account)
        change.announce, change.since = fields, since     # read when the batch is encoded
        change.fields, change.withdraw = {}, False
        self._kick()

    def update(self, call_id: str, urgent: bool = True, **fields) -> None:
        """Change fields of a live call's hash: at once (a status the API must see), or
        with the next batch (urgent=False: the IVR path so far, for the record only)."""
        entry = self.live.get(call_id)
        if entry is None:
            return                    # withdrawn already: nothing to change
        entry[1].update(fields)
        self._change(call_id, entry[0]).fields.update(fields)
        self._kick(urgent=urgent)

    def withdraw(self, call_id: str) -> None:
        entry = self.live.pop(call_id, None)
        if entry is None:
            return
        change = self._queue.get(call_id)
        if change is not None and change.announce is not None:
            del self._queue[call_id]       # never told: nothing to take back
            return
        self._change(call_id, entry[0]).withdraw = True
        self._kick(urgent=True)

    def _change(self, call_id: str, account: str) -> _Change:
        change = self._queue.get(call_id)
        if change is None:
            change = self._queue[call_id] = _Change(account)
        return change

    # -- writing -----------------------------------------------------------------------
    def _kick(self, urgent: bool = False) -> None:
        if urgent:
            self._urgent = True
            if self._nap is not None and not self._nap.done():
                self._nap.set_result(None)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.delay > 0 and not self._urgent:
                self._nap = loop.create_future()
                timer = loop.call_later(self.delay, _wake, self._nap)
                try:
                    await self._nap
                finally:
                    timer.cancel()
                    self._nap = None
            self._urgent = False
            batch, self._queue = list(self._queue.items()), {}
            # a script runs atomically, holding Redis up meanwhile: at most _CHUNK calls each
            for start in range(0, len(batch), _CHUNK):
                chunk = batch[start:start + _CHUNK]
                keys, changes = _encode(chunk, self.engine)
                try:
                    await self._apply(keys=keys, args=[self.ttl, changes])
                    self.batches += 1
                except Exception as exc:
                    self.failed += 1
                    log.warning("live calls not written to Redis (%d changes): %s",
                                len(chunk), exc)

    async def flush(self) -> None:
        """Wait until everything queued so far is written (stop, tests)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def refresh(self) -> None:
        """Write every live call again in full, in a script call per 500: keeps the TTLs alive and
        brings back calls a Redis restart (or a failed batch) lost."""
        for call_id, (account, fields, since) in self.live.items():
            queued = self._queue.get(call_id)
            if queued is None or queued.announce is None:   # else it is on its way
                self._announce(call_id, account, fields, since)
        await self.flush()


def _wake(nap: asyncio.Future) -> None:
    if not nap.done():
        nap.set_result(None)


def _encode(batch: list[tuple[str, _Change]], engine: str = "") -> tuple[list[str], str]:
    """The batch as APPLY's KEYS and its JSON argument."""
    keys, changes = [redis_schema.engine_calls_key(engine or "-")], []
    for call_id, change in batch:
        keys += [redis_schema.live_call_key(call_id), redis_schema.live_calls_key(change.account)]
        out: dict = {"id": call_id}
        if change.announce is not None:
            out["a"] = _flat({**change.announce, **change.fields,
                              **({"engine": engine} if engine else {})})
            out["s"] = change.since
        elif change.fields:
            out["f"] = _flat(change.fields)
        if change.withdraw:
            out["w"] = 1
        changes.append(out)
    return keys, json.dumps(changes, separators=(",", ":"))


def _flat(fields: dict) -> list[str]:
    return [str(x) for kv in fields.items() for x in kv]
