"""This engine among the others: its heartbeat and free capacity in Redis, theirs as last
read, and which engine takes the next outbound call.

Each heartbeat (`engine_heartbeat`, 1 s) writes `trunx:engine:{id}` {free, capacity, calls,
accounts} with a TTL of `engine_dead_after` and the time into `trunx:engines`, then reads
every other engine's hash. An engine whose hash expired is dead (agi_server.cluster.reclaim
takes over its work), but only once this engine's own beats have gone through for a whole
`engine_dead_after` without a break: a Redis outage or a Sentinel failover expires (or
loses) every engine's hash at once, and a live peer needs that long to write its own
again. `pick()` names the live engine with the most free capacity for the next call,
counting the calls handed out since the last read, so equal engines take turns;
`account_calls()` is an account's outbound calls on every engine, for its cap.
"""
from __future__ import annotations

import json
import socket
import time

from trunx import redis_schema

UNLIMITED = 1_000_000     # "free" of an engine with no engine_capacity: fewest calls wins


def engine_id(config, agi_port: int | None = None) -> str:
    """The configured id, or <hostname>-<AGI port> (unique per host and listener)."""
    return config.engine_id or f"{socket.gethostname()}-{agi_port or config.agi_port}"


class Peer:
    __slots__ = ("accounts", "free", "id")

    def __init__(self, engine: str, free: int, accounts: dict):
        self.id, self.free, self.accounts = engine, free, accounts


class Membership:
    def __init__(self, config, redis, engine: str, load):
        """`load()` -> (calls held now, {account: outbound calls ringing or answered})."""
        self.config = config
        self.redis = redis
        self.id = engine
        self.capacity = int(config.engine_capacity)
        self._load = load
        self.peers: dict[str, Peer] = {}       # the other live engines, as last read
        self.dead: list[str] = []              # engines in trunx:engines with no heartbeat
        self.handed: dict[str, int] = {}       # calls handed to each peer since the read
        self.beats = 0
        # since when our beats have gone through without a break: a peer's hash is only
        # proof of its death once Redis has been up for a whole engine_dead_after (a Redis
        # outage or a Sentinel failover expires or loses every engine's hash at once)
        self._up_since: float | None = None
        self.trusted = False                   # whether a missing hash means a dead engine

    def free(self) -> int:
        calls, _ = self._load()
        return (self.capacity or UNLIMITED) - calls

    async def beat(self) -> None:
        calls, accounts = self._load()
        ttl_ms = max(1, int(self.config.engine_dead_after * 1000))
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(redis_schema.engine_key(self.id), mapping={
            "free": (self.capacity or UNLIMITED) - calls, "capacity": self.capacity,
            "calls": calls, "accounts": json.dumps(accounts), "at": now_ms})
        pipe.pexpire(redis_schema.engine_key(self.id), ttl_ms)
        pipe.zadd(redis_schema.ENGINES, {self.id: now_ms})
        pipe.zrange(redis_schema.ENGINES, 0, -1)
        try:
            members = (await pipe.execute())[-1]
        except Exception:
            self._up_since, self.trusted = None, False
            raise
        up_since = self._up_since = self._up_since or time.monotonic()
        trusted = time.monotonic() - up_since >= self.config.engine_dead_after
        others = [m for m in members if m != self.id]
        pipe = self.redis.pipeline(transaction=False)
        for engine in others:
            pipe.hgetall(redis_schema.engine_key(engine))
        try:
            hashes = await pipe.execute() if others else []
        except Exception:
            self._up_since, self.trusted = None, False
            raise
        peers, dead = {}, []
        for engine, fields in zip(others, hashes, strict=True):
            if not fields:
                if trusted:
                    dead.append(engine)
                continue
            peers[engine] = Peer(engine, int(fields.get("free") or 0),
                                 json.loads(fields.get("accounts") or "{}"))
        self.peers, self.dead, self.handed = peers, dead, {}
        self.trusted = trusted
        self.beats += 1

    def alive(self, engine: str) -> bool:
        return engine == self.id or engine in self.peers

    def pick(self, *, self_ready: bool = True) -> str | None:
        """The engine to place the next call: the most free capacity, this one on a tie.
        None when no engine has room."""
        best, room = (self.id, self.free()) if self_ready else (None, 0)
        for peer in self.peers.values():
            free = peer.free - self.handed.get(peer.id, 0)
            if free > room:
                best, room = peer.id, free
        if best is None or room <= 0:
            return None
        if best != self.id:
            self.handed[best] = self.handed.get(best, 0) + 1
        return best

    def account_calls(self, account: str) -> int:
        """The account's outbound calls on the other engines (as of their last heartbeat)."""
        return sum(int(p.accounts.get(account, 0)) for p in self.peers.values())
