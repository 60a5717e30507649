"""In-process cache of published IVR trees, kept true by the publish channel.

A call looks up its DID once, at the start, and pins the Program (trunx.ivr.program) it
gets for the whole call; each version is decoded once, when it is read from Redis, and the
runner walks the frozen Program, so no node costs a Redis round trip or a decode. With a
warm cache a call costs no Redis round trip at all.

Versions are cached without expiry (bounded LRU), but a version number is not forever: an
IVR deleted and created again starts at v1 anew, and a restored database resyncs older
trees. So an announcement about an IVR drops its cached versions with its pointer (the
next call reads one key again; calls in progress keep the tree they pinned), and losing
the subscription or a resync drops everything. The DID map and the current-version
pointers are cached only while the subscription to the publish channel is up; any
announcement drops what it names. A generation counter stops a
read that raced an announcement from storing the stale value it read.

Redis away (`serve`): the cache also remembers, per DID, the last Program it served, and
keeps that through a lost subscription. When Redis cannot be read (down, failing over, or
back but empty and not yet rebuilt: no `trunx:synced`), a DID the engine has served before
runs on that Program, marked stale (the caller would otherwise hear the fallback prompt
for a cache blip); a DID never served raises TreeUnavailable. Once the subscription is
back, every DID served stale is read again and a changed version is logged (calls already
running keep what they pinned, as after any update). The subscription is retried every
0.1-0.5 s, so normal caching resumes within a second of Redis answering.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import NamedTuple

from redis.exceptions import RedisError

from trunx import redis_schema
from trunx.errors import Unavailable
from trunx.ivr import program as ivr_program
from trunx.ivr.program import Program

log = logging.getLogger(__name__)


class TreeUnavailable(Unavailable):
    """Redis could not be read and the cache could not answer."""

    def __init__(self, message: str):
        super().__init__("tree-unavailable", message)


class Served(NamedTuple):
    """What a call runs: the Program (None: the DID has no IVR), and whether it is the
    last-known one, served because Redis could not be read."""
    program: Program | None
    stale: bool = False


RETRY_MAX = 0.5     # seconds between subscription attempts, at most


class TreeCache:
    def __init__(self, redis, *, max_versions: int = 4096, on_connect=None,
                 read_timeout: float = 1.0, max_known: int = 100_000):
        self._redis = redis
        self._on_connect = on_connect   # awaited after each (re)subscription
        self._dids: dict[str, dict | None] = {}
        self._current: dict[tuple[str, str], int | None] = {}
        self._versions: OrderedDict[tuple[str, str, int], Program] = OrderedDict()
        self._max_versions = max_versions
        self._generation = 0
        self._reading: dict[str, asyncio.Future] = {}   # key -> the GET in flight
        self.listening = False
        self.redis_reads = 0
        self._task: asyncio.Task | None = None
        # DID -> the Program last served for it: survives a lost subscription (serve())
        self._known: OrderedDict[str, Program] = OrderedDict()
        self._max_known = max_known
        self._served_stale: dict[str, int] = {}    # DID -> version served stale
        self._read_timeout = read_timeout          # a Redis that hangs counts as away
        self.stale_served = 0
        self.rechecked = 0          # DIDs served stale, read again once Redis was back
        self.recheck_changed = 0    # ... whose version had moved meanwhile
        self._recheck: asyncio.Task | None = None

    # -- the subscription -------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="tree-cache-listener")

    async def stop(self) -> None:
        for task in (self._task, self._recheck):
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def wait_listening(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.listening:
                await asyncio.sleep(0.01)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(redis_schema.PUBLISH_CHANNEL)
                if self._on_connect is not None:
                    await self._on_connect()
                self._forget_all()      # anything cached before this point may be stale
                self.listening = True
                backoff = 0.1
                if self._served_stale and (self._recheck is None or self._recheck.done()):
                    self._recheck = asyncio.create_task(self._recheck_stale(),
                                                        name="tree-cache-recheck")
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("publish channel lost (%s); caching paused", exc)
            finally:
                self.listening = False
                self._forget_all()
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX)

    def _forget_all(self) -> None:
        self._generation += 1
        self._dids.clear()
        self._current.clear()
        self._versions.clear()

    def _apply(self, raw) -> None:
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            self._forget_all()
            return
        self._generation += 1
        kind = msg.get("kind")
        if kind == "did":
            self._dids.pop(msg.get("did"), None)
        elif kind == "ivr":
            ident = (msg.get("account"), msg.get("ivr_id"))
            self._current.pop(ident, None)
            for key in [k for k in self._versions if k[:2] == ident]:
                del self._versions[key]
        else:
            self._forget_all()

    # -- serving calls ----------------------------------------------------------------
    async def serve(self, did: str) -> Served:
        """What a new call to `did` runs: `lookup`, or with Redis away the last-known
        Program for a DID served before (stale). TreeUnavailable for a DID never served."""
        program = self._in_memory(did)
        if program is not None:      # the usual call: no Redis read, so no timer either
            self._remember(did, program)
            return Served(program)
        try:
            async with asyncio.timeout(self._read_timeout):
                program = await self.lookup(did)
                # a DID that lost its tree, or a Redis back empty (restarted, rebuilding)?
                if program is None and did in self._known \
                        and not await self._redis.exists(redis_schema.SYNCED_KEY):
                    raise TreeUnavailable("Redis answered without its data (not resynced)")
        except (TreeUnavailable, TimeoutError, RedisError, OSError) as exc:
            known = self._known.get(did)
            if known is None:
                if isinstance(exc, TreeUnavailable):
                    raise
                raise TreeUnavailable(str(exc) or type(exc).__name__) from exc
            self.stale_served += 1
            if did not in self._served_stale:     # once per DID and outage, not per call
                self._served_stale[did] = known.version
                log.warning("DID %s: Redis unreachable (%s); running its last-known tree "
                            "%s v%d", did, exc, known.ivr_id, known.version)
            return Served(known, stale=True)
        if program is None:
            self._known.pop(did, None)
        else:
            self._remember(did, program)
        return Served(program)

    def _remember(self, did: str, program: Program) -> None:
        """The last-known Program of a DID: what its calls run while Redis is away."""
        self._known[did] = program
        self._known.move_to_end(did)
        if len(self._known) > self._max_known:
            self._known.popitem(last=False)

    async def _recheck_stale(self) -> None:
        """Redis is back: read every DID served stale again; say where the tree moved."""
        while self._served_stale and self.listening:
            did, served = self._served_stale.popitem()
            before = self.stale_served
            try:
                now = (await self.serve(did)).program
            except TreeUnavailable:     # its tree went while Redis was away and it is gone
                now = None
            if self.stale_served != before:
                return         # away again: what is left is rechecked on the next reconnect
            self.rechecked += 1
            if now is None or now.version != served:
                self.recheck_changed += 1
                log.warning("DID %s was served v%d while Redis was away; it now runs %s",
                            did, served, f"v{now.version}" if now else "no IVR")

    # -- lookups ----------------------------------------------------------------------
    async def _get(self, key: str):
        """GET `key`, once however many calls ask at the same moment: when a burst of
        calls meets a cold cache, the first one reads and the rest wait for its answer."""
        pending = self._reading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        self._reading[key] = pending = asyncio.get_running_loop().create_future()
        self.redis_reads += 1
        try:
            value = await self._redis.get(key)
        except BaseException as exc:
            failed = TreeUnavailable(str(exc) or type(exc).__name__)
            pending.set_exception(failed)
            pending.exception()      # retrieved: the waiters, if any, get it too
            if isinstance(exc, Exception):
                raise failed from exc
            raise
        else:
            pending.set_result(value)
            return value
        finally:
            del self._reading[key]

    def _in_memory(self, did: str) -> Program | None:
        """What `lookup` returns when everything it reads is cached; else None."""
        if not self.listening:
            return None
        target = self._dids.get(did)
        if not target:
            return None
        ident = (target["account"], target["ivr_id"])
        version = self._current.get(ident)
        if version is None:
            return None
        key = (*ident, version)
        program = self._versions.get(key)
        if program is not None:
            self._versions.move_to_end(key)
        return program

    async def lookup(self, did: str) -> Program | None:
        """The Program the DID's next call should run, or None if it has none."""
        gen = self._generation
        if self.listening and did in self._dids:
            target = self._dids[did]
        else:
            raw = await self._get(redis_schema.did_key(did))
            target = json.loads(raw) if raw else None
            if self.listening and gen == self._generation:
                self._dids[did] = target
        if not target:
            return None
        return await self.current(target["account"], target["ivr_id"])

    async def current(self, account: str, ivr_id: str) -> Program | None:
        """The Program an IVR of the account runs now, or None if it has none."""
        ident = (account, ivr_id)
        gen = self._generation
        if self.listening and ident in self._current:
            version = self._current[ident]
        else:
            raw = await self._get(redis_schema.ivr_current_key(*ident))
            version = int(raw) if raw else None
            if self.listening and gen == self._generation:
                self._current[ident] = version
        if version is None:
            return None
        return await self._version(*ident, version)

    async def version(self, account: str, ivr_id: str, version: int) -> Program | None:
        """One version of an IVR (a call's pinned one)."""
        return await self._version(account, ivr_id, version)

    async def _version(self, account: str, ivr_id: str, version: int) -> Program | None:
        key = (account, ivr_id, version)
        program = self._versions.get(key)
        if program is not None:
            self._versions.move_to_end(key)
            return program
        raw = await self._get(redis_schema.ivr_version_key(*key))
        if not raw:
            return None
        try:
            program = ivr_program.decode(json.loads(raw))
        except ValueError as exc:     # JSONDecodeError is one too
            raise TreeUnavailable(f"{redis_schema.ivr_version_key(*key)}: {exc}") from exc
        self._versions[key] = program
        if len(self._versions) > self._max_versions:
            self._versions.popitem(last=False)
        return program
