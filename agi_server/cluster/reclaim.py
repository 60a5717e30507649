"""Taking over a dead engine's work: its queued calls are placed by a live engine (each at
most once), and its live calls are closed as `lost`.

An engine is dead when its heartbeat hash (`trunx:engine:{id}`, TTL `engine_dead_after`)
is gone while it is still listed in `trunx:engines`. One live engine wins
`trunx:engine:{id}:reclaim` (SET NX) and then:

1. claims the dead engine's pending entries of the shared originate stream (read into its
   lanes, never placed; XPENDING for that consumer, XCLAIM) into its own lanes: they wait
   their account's turn again;
2. claims what was handed to the dead engine (`trunx:originate-to:{id}`: pending and
   unread) and places it at once: it was paced and taken in turn already;
3. refuses the commands left on its stream (the calls are gone with it);
4. closes its calls: outbound calls it originated (`trunx:call:{id}:engine`) end
   `failed`, or `completed` if answered, with endReason `lost`, through the tracker (row,
   call event, status webhook); inbound calls in its set (`trunx:engine:{id}:calls`) get
   outcome and endReason `lost` with the IVR path they had (the engine keeps it in the
   call's live hash, `path`, node by node); their live hashes go, so the API answers 409
   for them at once;
5. drops it from `trunx:engines`.

Placed at most once: the dialer still takes the `trunx:call:{id}:originated` mark with
SET NX before any Originate, and skips a call whose row left `initiated`. A call the dead
engine had marked but whose Originate it may or may not have sent is not sent again: its
row is closed in step 4 (endReason `lost`).

Entries of any consumer of the shared group that is not a live engine (an engine named
otherwise before an upgrade) are claimed the same way, in step 1.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time

from trunx import redis_schema
from trunx.models import Call, utcnow

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
RECLAIM_LOCK = 60        # seconds: one engine reclaims; another retries after this


class Reclaimer:
    def __init__(self, db, redis, membership, dialer, tracker, runner):
        self._db = db
        self.redis = redis
        self.membership = membership
        self.dialer = dialer
        self.tracker = tracker
        self.runner = runner          # agi_server.calls.actions.ActionRunner: refusals
        self.reclaimed: dict[str, dict] = {}    # engine -> what was taken over (counts)

    async def run(self) -> None:
        """After each heartbeat: take over every dead engine's work, once; then entries
        of consumers that are no engine at all."""
        for engine in list(self.membership.dead):
            if await self.redis.set(redis_schema.engine_reclaim_key(engine), self.membership.id,
                                    nx=True, ex=RECLAIM_LOCK):
                try:
                    self.reclaimed[engine] = await self.reclaim(engine)
                    log.warning("engine %s is dead; took over its work: %s", engine,
                                self.reclaimed[engine])
                except Exception:
                    await self.redis.delete(redis_schema.engine_reclaim_key(engine))
                    raise
        await self._orphaned_consumers()

    async def _orphaned_consumers(self) -> None:
        if not self.membership.trusted:     # just after a Redis outage: peers' hashes too
            return
        try:
            consumers = await self.redis.xinfo_consumers(redis_schema.ORIGINATE_STREAM,
                                                         redis_schema.ORIGINATE_GROUP)
        except Exception:        # no stream or group yet
            return
        for c in consumers:
            name = c.get("name")
            if c.get("pending") and not self.membership.alive(name) and \
                    not await self.redis.exists(redis_schema.engine_key(name)):
                await self._claim_queued(name)

    async def reclaim(self, engine: str) -> dict:
        counts = {"queued": await self._claim_queued(engine),
                  "handed": await self._claim_handed(engine),
                  "commands": await self._refuse_commands(engine)}
        counts.update(await self._close_calls(engine))
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(redis_schema.ENGINES, engine)
        pipe.delete(redis_schema.engine_calls_key(engine),
                    redis_schema.engine_command_stream(engine))
        await pipe.execute()
        return counts

    async def _claim(self, stream: str, consumer: str) -> list:
        """XCLAIM every entry `consumer` has pending in `stream` to this engine."""
        claimed = []
        while True:
            pending = await self.redis.xpending_range(
                stream, redis_schema.ORIGINATE_GROUP, "-", "+", CLAIM_BATCH,
                consumername=consumer)
            if not pending:
                return claimed
            ids = [p["message_id"] for p in pending]
            entries = await self.redis.xclaim(stream, redis_schema.ORIGINATE_GROUP,
                                              self.membership.id, 0, ids)
            claimed += [e for e in entries if e[1] is not None]
            gone = {p["message_id"] for p in pending} - {e[0] for e in entries}
            if gone:      # deleted meanwhile: nothing to place, only the pending entry
                await self.redis.xack(stream, redis_schema.ORIGINATE_GROUP, *gone)
            if len(pending) < CLAIM_BATCH:
                return claimed

    async def _claim_queued(self, consumer: str) -> int:
        entries = await self._claim(redis_schema.ORIGINATE_STREAM, consumer)
        self.dialer.add_entries(entries)
        return len(entries)

    async def _claim_handed(self, engine: str) -> int:
        stream = redis_schema.engine_originate_stream(engine)
        if not await self.redis.exists(stream):
            return 0
        entries = await self._claim(stream, engine)
        while True:                   # and what it never read
            reply = await self.redis.xreadgroup(redis_schema.ORIGINATE_GROUP,
                                                self.membership.id, {stream: ">"},
                                                count=CLAIM_BATCH)
            items = [e for _, batch in reply or [] for e in batch]
            entries += items
            if len(items) < CLAIM_BATCH:
                break
        self.dialer.direct.extend((stream, entry_id, (fields or {}).get("call"))
                                  for entry_id, fields in entries)
        return len(entries)

    async def _refuse_commands(self, engine: str) -> int:
        stream = redis_schema.engine_command_stream(engine)
        entries = await self.redis.xrange(stream, "-", "+")
        for _, fields in entries:
            if fields.get("action") != "hangup":
                await self.runner.refuse(fields, "call-not-in-progress",
                                         f"the engine holding the call ({engine}) stopped")
        return len(entries)

    async def _close_calls(self, engine: str) -> dict:
        outbound = 0
        for row in await self._db(_unfinished_outbound):
            if row.status == "initiated" and await self.redis.get(
                    redis_schema.originated_key(row.id)) != "sent":
                continue              # still queued: its entry was claimed above
            if await self.redis.get(redis_schema.call_engine_key(row.id)) != engine:
                continue
            if self.tracker.get(row.id) is not None:
                continue              # ours after all (reclaimed and placed here)
            call = self.tracker.track(row)
            call.hangup_reason = "lost"
            await self.tracker.finish(call, time.time(), reason="lost")
            outbound += 1
        inbound = []
        for call_id in await self.redis.smembers(redis_schema.engine_calls_key(engine)):
            live = await self.redis.hgetall(redis_schema.live_call_key(call_id))
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(redis_schema.live_call_key(call_id))
            if live.get("account"):
                pipe.zrem(redis_schema.live_calls_key(live["account"]), call_id)
            await pipe.execute()
            if live.get("direction", "inbound") == "inbound":
                inbound.append((call_id, live))
        if inbound:
            await self._db(_close_inbound, inbound)
        return {"outbound_lost": outbound, "inbound_lost": len(inbound)}


def _unfinished_outbound() -> list[Call]:
    return list(Call.select().where(Call.direction == "outbound",
                                     Call.status.in_(("initiated", "ringing", "answered"))))


def _close_inbound(calls: list[tuple[str, dict]]) -> None:
    """An inbound call whose engine died: its row (if the engine wrote one while the call
    ran, with the path so far) ends `lost`; without one, a row from what the live hash
    said (who called which number, since when, the path so far)."""
    now = utcnow()
    for call_id, live in calls:
        path = _path(live.get("path"))
        row = Call.get_or_none(Call.id == call_id)
        if row is not None:
            if row.ended_at is None or row.outcome is None:
                Call.update(outcome="lost", end_reason="lost", status="completed",
                            ended_at=now, path=row.path or path
                            ).where(Call.id == call_id).execute()
            continue
        started = _parse_iso(live.get("since")) or now
        Call.create(id=call_id, account=live.get("account") or None, direction="inbound",
                    from_number=live.get("from") or None, to_number=live.get("to") or None,
                    status="completed", channel=live.get("channel") or None, path=path,
                    ivr_id=live.get("ivr") or None,
                    ivr_version=int(live["ivr_version"]) if live.get("ivr_version", "").isdigit()
                    else None,
                    outcome="lost", end_reason="lost", created_at=started,
                    answered_at=started, ended_at=now,
                    duration=round((now - started).total_seconds(), 3))


def _path(text: str | None) -> list:
    try:
        path = json.loads(text or "[]")
    except ValueError:
        return []
    return path if isinstance(path, list) else []


def _parse_iso(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None


async def watch(membership, reclaimer, stopping: asyncio.Event, interval: float) -> None:
    """The heartbeat loop: beat, then reclaim what dead engines left."""
    while not stopping.is_set():
        try:
            await membership.beat()
            await reclaimer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("engine heartbeat/reclaim failed: %s", exc)
        try:
            await asyncio.wait_for(stopping.wait(), interval)
        except TimeoutError:
            pass
