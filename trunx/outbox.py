"""The outbox: API writes that need Redis after the database, safe against a process that
dies between the two (a `kill -9` of an API worker, a crash, an OOM kill).

    write    in the caller's transaction: the row it follows (a Call, ...) and an
             OutboxEntry saying which Redis step is owed, committed together
    deliver  the API, right after the commit: the Redis step (`apply`), then the entry
             marked done, except an originate entry: its Redis mark says it ran, and the
             sweep marks such entries done in bulk (one UPDATE per batch instead of a
             second write per POST /api/voice, which the campaign bench measured)
    apply    the Redis step, at most once while Redis keeps its mark: one Lua script sets
             `trunx:outbox:{id}` NX and runs the step's commands only if the mark was not
             there, so a second apply of the same entry is a no-op
    sweep    the engine (agi_server/outbox.py): entries older than `outbox_grace` seconds
             and not done whose Redis mark is there are marked done (they ran); the others
             are applied and marked done: their API worker died between the commit and the
             Redis step
    rebuild  a Redis that restarted empty gets back, from the database: the calls still
             waiting to be placed, the `originated` marks of calls already placed (so none
             is placed twice), the live-call actions' states and their pending commands

Three kinds of entry:

    originate  a placed call (POST /api/voice, an agent's call): the visible queue
               (ZADD NX) and the dialer's stream (XADD). Placing twice is harmless too: the
               dialer skips a call that is not `initiated`, or that has its `originated`
               mark in Redis or its `initiated` CallEvent in the database (written before
               the Originate is sent).
    command    a request about a call (a live-call action, a hangup): the action's state
               hash, when it has one, and the command stream entry. The engine keeps the
               action's final state on the entry (`record_state`).
    sync       an IVR saved or deleted, a DID assigned, unassigned or deleted
               (trunx/ivr/store.py, under the writer lock): completed by publishing what
               the database says then (`republish`), which is right however late it runs.

Why a Lua script for the mark and not a MULTI: the step must run only if the mark was not
set, which a MULTI cannot decide. Keys other than the mark are named in the arguments, so
the script is for a single Redis (or Sentinel's primary), not Redis Cluster.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time

from trunx import db, redis_schema
from trunx.models import Call, CallEvent, OutboxEntry, utcnow

log = logging.getLogger(__name__)

ORIGINATE, COMMAND, SYNC = "originate", "command", "sync"
MARK_TTL = 7 * 24 * 3600     # seconds an applied entry's mark stays
# an action's command is sent again after Redis lost its data only while this young
# (older ones either ran or will never find their call)
REPLAY_WINDOW = 600
FINAL_ACTION = ("completed", "failed", "stopped", "canceled", "answered")

_APPLY = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  for _, op in ipairs(cjson.decode(ARGV[2])) do redis.call(unpack(op)) end
  return 1
end
return 0
"""


def mark_key(entry_id: str) -> str:
    return f"trunx:outbox:{entry_id}"


# -- the API's half ------------------------------------------------------------------------
def write(kind: str, ref: str, call_id: str | None, payload: dict, *,
          entry_id: str | None = None) -> OutboxEntry:
    """An entry, in the caller's transaction (`with store.db.atomic(): ...`); `entry_id`
    if the caller made its id beforehand (outside a lock it then holds)."""
    extra = {"id": entry_id} if entry_id is not None else {}
    return _INSERT.create(OutboxEntry._meta.database, kind=kind, ref=ref, call_id=call_id,
                          payload=payload, **extra)


_INSERT = db.PreparedInsert(OutboxEntry)


def originate_payload(call_id: str, account_id: str) -> dict:
    return {"call": call_id, "account": account_id or "", "queued_ms": time.time() * 1000}


def command_payload(fields: dict, state: dict | None = None, *,
                    stream: str = redis_schema.COMMAND_STREAM) -> dict:
    """fields: the command stream entry; state: the action's first state hash, if any;
    stream: the command stream of the engine holding the call, chosen when the API writes
    the entry (redis_schema.command_stream_for). An entry applied late to a dead engine's
    stream is refused by the engine that reclaims it (agi_server/cluster/reclaim.py)."""
    return {"fields": {k: str(v) for k, v in fields.items()},
            "hash": None if state is None else {k: str(v) for k, v in state.items()},
            "stream": stream}


# kinds the API leaves for the sweep to mark done: their Redis mark is the proof they ran
MARKED_BY_SWEEP = frozenset({ORIGINATE})


def deliver(redis, entry: OutboxEntry) -> None:
    """The Redis step now, then the entry done (an originate entry: by the sweep, from its
    Redis mark). If Redis refuses, the entry is dropped and the error propagates (the
    caller answers 503 and undoes its row: nothing is owed). A failure to mark it done is
    only logged: the engine's sweep finds its mark and marks it."""
    try:
        apply(redis, entry.id, entry.kind, entry.payload)
    except Exception:
        entry.delete_instance()
        raise
    if entry.kind in MARKED_BY_SWEEP:
        return
    try:
        mark_done(entry.id)
    except Exception:
        log.exception("outbox entry %s applied but not marked done", entry.id)


def mark_done(entry_id: str) -> None:
    _MARK_DONE.run(OutboxEntry._meta.database, OutboxEntry.done_at.db_value(utcnow()),
                    entry_id)


# SQL built once: an IVR save marks its entry with the writer lock held
_MARK_DONE = db.Prepared(lambda: OutboxEntry.update(done_at=utcnow())
                         .where(OutboxEntry.id == ""))


def ops(kind: str, payload: dict) -> list[list]:
    """The Redis commands an entry stands for."""
    if kind == ORIGINATE:
        return [["ZADD", redis_schema.ORIGINATE_QUEUE, "NX", repr(payload["queued_ms"]),
                 payload["call"]],
                ["XADD", redis_schema.ORIGINATE_STREAM, "*", "call", payload["call"],
                 "account", payload["account"]]]
    if kind == COMMAND:
        out = []
        state = payload.get("hash")
        if state:
            key = redis_schema.action_key(payload["fields"]["id"])
            out.append(["HSET", key, *_flat(state)])
            out.append(["EXPIRE", key, str(redis_schema.ACTION_TTL)])
        stream = payload.get("stream") or redis_schema.COMMAND_STREAM
        out.append(["XADD", stream, "*", *_flat(payload["fields"])])
        return out
    raise ValueError(f"unknown outbox kind {kind!r}")


def apply(redis, entry_id: str, kind: str, payload: dict):
    """1 if the step ran now, 0 if it had run before. With an asyncio client, await it."""
    return redis.eval(_APPLY, 1, mark_key(entry_id), str(MARK_TTL),
                      json.dumps(ops(kind, payload)))


def apply_many(redis, entries: list[OutboxEntry]) -> list:
    """apply() of each entry in one round trip (a turn of POST /api/voice's group commit):
    for each, 1, 0 or the error Redis answered it with."""
    pipe = redis.pipeline(transaction=False)
    for entry in entries:
        pipe.eval(_APPLY, 1, mark_key(entry.id), str(MARK_TTL),
                  json.dumps(ops(entry.kind, entry.payload)))
    return pipe.execute(raise_on_error=False)


def _flat(mapping: dict) -> list[str]:
    return [str(x) for pair in mapping.items() for x in pair]


# -- the engine's half (blocking: run on its database thread) --------------------------------
SWEEP_BATCH = 500


def stale(grace: float, limit: int = SWEEP_BATCH) -> list[OutboxEntry]:
    """Entries not done `grace` seconds after they were written."""
    before = utcnow() - dt.timedelta(seconds=grace)
    return list(OutboxEntry.select().where(OutboxEntry.done_at.is_null(),
                                           OutboxEntry.created_at < before)
                .order_by(OutboxEntry.created_at).limit(limit))


def sweep(store, grace: float, republish) -> int:
    """Complete the entries whose API worker died; returns how many ran now. A queued
    call that left `initiated` meanwhile (cancelled) is not queued again. `republish`
    completes a sync entry (trunx.ivr.store.republish, passed in: that module writes
    entries of this one)."""
    redis, ran = store.redis, 0
    while True:
        batch = stale(grace)
        ran += _sweep_batch(store, redis, batch, republish)
        if len(batch) < SWEEP_BATCH:     # every entry of a batch is done after it: progress
            return ran


def _applied(redis, entries: list[OutboxEntry]) -> set[str]:
    """The ids among `entries` whose Redis mark is there: their step ran."""
    marked = [e for e in entries if e.kind != SYNC]
    if not marked:
        return set()
    pipe = redis.pipeline(transaction=False)
    for entry in marked:
        pipe.exists(mark_key(entry.id))
    return {e.id for e, found in zip(marked, pipe.execute(), strict=True) if found}


def _sweep_batch(store, redis, batch: list[OutboxEntry], republish) -> int:
    applied = _applied(redis, batch)
    if applied:      # delivered by the API (an originate entry is marked here, in bulk)
        OutboxEntry.update(done_at=utcnow()).where(OutboxEntry.id.in_(list(applied))).execute()
    ran = 0
    for entry in batch:
        if entry.id in applied:
            continue
        if entry.kind == SYNC:
            republish(store, entry.payload)
            mark_done(entry.id)
            ran += 1
            log.warning("outbox entry %s (%s) completed by the engine", entry.id, entry.ref)
            continue
        if entry.kind == ORIGINATE:
            row = Call.get_or_none(Call.id == entry.ref)
            # still queued: a Redis that lost the mark (restarted, rebuilt) has the call
            # back in its queue and stream; a second stream entry would be one more to skip
            if row is None or row.status != "initiated" \
                    or redis.zscore(redis_schema.ORIGINATE_QUEUE, entry.ref) is not None:
                mark_done(entry.id)
                continue
        ran += apply(redis, entry.id, entry.kind, entry.payload)
        mark_done(entry.id)
        log.warning("outbox entry %s (%s %s) completed by the engine: its API worker "
                    "died before the Redis step", entry.id, entry.kind, entry.ref)
    return ran


def prune(keep: float = redis_schema.ACTION_TTL) -> int:
    """Drop the entries done more than `keep` seconds ago (a rebuild needs an action's
    entry as long as Redis would keep its state)."""
    before = utcnow() - dt.timedelta(seconds=keep)
    return OutboxEntry.delete().where(OutboxEntry.done_at < before).execute()


def record_state(action_id: str, state: dict) -> None:
    """The action's state as it ended (its whole hash), kept for a rebuild."""
    OutboxEntry.update(state=state).where(OutboxEntry.kind == COMMAND,
                                          OutboxEntry.ref == action_id).execute()


def _placed_ids():
    """Calls the dialer took (or a DELETE cancelled): each has its `initiated` CallEvent,
    written before the Originate is sent."""
    return (CallEvent.select(CallEvent.call)
            .where(CallEvent.type == "call.status", CallEvent.status == "initiated"))


def placed_before(call_id: str) -> bool:
    """The dialer's check that survives Redis: was this call taken before?"""
    return CallEvent.select().where(CallEvent.call == call_id, CallEvent.type == "call.status",
                                    CallEvent.status == "initiated").exists()


def rebuild(redis) -> dict:
    """Give a Redis that lost its data (restarted empty) back what the database knows
    about calls in flight. Safe to run on a Redis that still has some of it: every write
    is NX or checked first."""
    counts = {"queued": 0, "placed_marks": 0, "actions": 0, "commands": 0}
    live = ("initiated", "ringing", "answered")
    placed = _placed_ids()
    waiting = (Call.select(Call.id, Call.account, Call.queued_at, Call.created_at)
               .where(Call.direction == "outbound", Call.status == "initiated",
                      Call.id.not_in(placed)).order_by(Call.created_at))
    for row in waiting:
        if redis.zscore(redis_schema.ORIGINATE_QUEUE, row.id) is not None:
            continue        # still queued: its stream entry went in with it (one script)
        at = row.queued_at or row.created_at
        payload = {"call": row.id, "account": row.account_id or "",
                   "queued_ms": at.replace(tzinfo=dt.UTC).timestamp() * 1000}
        pipe = redis.pipeline(transaction=True)
        for op in ops(ORIGINATE, payload):
            pipe.execute_command(*op)
        pipe.execute()
        counts["queued"] += 1
    for row in (Call.select(Call.id).where(Call.direction == "outbound",
                                           Call.status.in_(live), Call.id.in_(placed))):
        if redis.set(redis_schema.originated_key(row.id), "sent", nx=True, ex=MARK_TTL):
            counts["placed_marks"] += 1
    since = utcnow() - dt.timedelta(seconds=redis_schema.ACTION_TTL)
    replay_since = utcnow() - dt.timedelta(seconds=REPLAY_WINDOW)
    for entry in (OutboxEntry.select().where(OutboxEntry.kind == COMMAND,
                                             OutboxEntry.created_at >= since)
                  .order_by(OutboxEntry.created_at)):
        state = entry.state or entry.payload.get("hash")
        if state:
            key = redis_schema.action_key(entry.ref)
            if not redis.exists(key):
                pipe = redis.pipeline(transaction=True)
                pipe.hset(key, mapping={k: str(v) for k, v in state.items()})
                pipe.expire(key, redis_schema.ACTION_TTL)
                pipe.execute()
                counts["actions"] += 1
        if entry.state is None and entry.created_at >= replay_since \
                and _call_in_progress(entry.call_id):
            # the engine takes a command once: one it already took is dropped by id
            redis.xadd(redis_schema.COMMAND_STREAM, entry.payload["fields"])
            counts["commands"] += 1
    return counts


def _call_in_progress(call_id: str | None) -> bool:
    if not call_id:
        return False
    row = Call.get_or_none(Call.id == call_id)
    return row is not None and row.status in ("initiated", "ringing", "answered")
