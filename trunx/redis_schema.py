"""Redis key names and the publish channel: the hand-off between the API and the engine.

    trunx:ivr:{account}:{ivr_id}:v{n}   compiled IVR version n (JSON), immutable once written
    trunx:ivr:{account}:{ivr_id}:cur    the current version number: a save only moves
                                        it forward (saves may publish out of order);
                                        a resync sets what SQLite says, even older
    trunx:did:{e164}                    {"account", "ivr_id"} for an assigned DID
    trunx:dnc:{account}                 set of suppressed E.164 numbers
    trunx:transfer:{account}            {"agent": id} or {"to": e164}: where an IVR transfer
                                        node naming no target sends the caller (absent:
                                        the account has no default)
    channel trunx:published             {"kind": "ivr"|"did"|"resync", ...} after each write

Outbound calls (admin_api.voice.service writes, agi_server's dialer and tracker read):

    trunx:originate                     stream {call}: calls for the engine to place, in order
    trunx:originate:queue               sorted set call id -> queued time (ms): the visible
                                        queue; a call leaves it when it is originated
    trunx:call:{id}:originated          set NX just before the Originate is sent: a call is
                                        placed at most once, whatever reconnects or restarts
    trunx:commands                      stream {call, action, ...}: requests for calls the
                                        engine runs (hangup, live-call actions), routed
                                        by the engine to the call's session

Live-call actions (admin_api.call_actions.service writes them,
agi_server.calls.actions carries them out):

    trunx:live:{call}                   hash {account, direction, status, channel, from,
                                        to, since} while an engine session holds the call:
                                        status in-progress (it takes actions) or
                                        transferred; kept alive by the engine (TTL),
                                        deleted at its end
    trunx:live-calls:{account}          sorted set call id -> start (epoch s): the live
                                        calls of an account (entries whose hash expired
                                        are stale: an engine that died)
    trunx:action:{uuid}                 hash: one action's state {type, call, account,
                                        status, params, result, error, *_at} (TTL 7 days)

Several engines (agi_server/cluster/; each engine has an id, config engine_id):

    trunx:engines                       sorted set engine id -> last heartbeat (epoch ms):
                                        every engine that ever ran, until its work is
                                        reclaimed after it died
    trunx:engine:{id}                   hash {free, capacity, calls, accounts, at}: the
                                        engine's free capacity and per-account outbound
                                        calls, written each heartbeat, TTL engine_dead_after
    trunx:engine:{id}:calls             set: the calls whose live hash this engine wrote
    trunx:engine:{id}:reclaim           SET NX while one engine takes over the dead one's work
    trunx:originate-to:{id}             stream {call, account}: calls handed to this engine
                                        to place now (already paced and taken in turn)
    trunx:commands:{id}                 stream: commands for calls this engine holds
    trunx:call:{id}:engine              the engine that originated an outbound call
    trunx:pace                          the shared calls-per-second pace (next free slot, s)
    trunx:pace:{account}                the account's own next free slot (its calls_per_second)

The outbox (trunx/outbox.py):

    trunx:outbox:{entry}                set NX by the script that applies an outbox entry's
                                        Redis step: the step runs at most once (TTL 7 days)

API requests (admin_api.idempotency):

    trunx:idem:{account}:{sha256 of key} {state: pending|done, fp, status, body, ...}: a
                                        POST's Idempotency-Key, reserved before the
                                        request acts, its response kept 24 h

Versions are immutable, so the engine may cache them forever; only the DID map and the
current pointers change, and every change is announced on the channel.
"""
from __future__ import annotations

import json

PUBLISH_CHANNEL = "trunx:published"
# Set by a resync from SQLite; a Redis that lacks it lost its data (a restart without
# persistence, a flush) and must be resynced before it is trusted.
SYNCED_KEY = "trunx:synced"


def rate_key(account_id: str, second: int) -> str:
    """The account's API requests in one second (admin_api/quotas.py); expires by itself."""
    return f"trunx:rate:{account_id}:{second}"


def ivr_version_key(account: str, ivr_id: str, version: int) -> str:
    return f"trunx:ivr:{account}:{ivr_id}:v{version}"


def ivr_current_key(account: str, ivr_id: str) -> str:
    return f"trunx:ivr:{account}:{ivr_id}:cur"


def did_key(number: str) -> str:
    return f"trunx:did:{number}"


def dnc_key(account: str) -> str:
    return f"trunx:dnc:{account}"


def default_transfer_key(account: str) -> str:
    return f"trunx:transfer:{account}"


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def announce(redis, **message) -> None:
    redis.publish(PUBLISH_CHANNEL, dumps(message))


ORIGINATE_STREAM = "trunx:originate"
ORIGINATE_QUEUE = "trunx:originate:queue"
ORIGINATE_GROUP = "engine"
COMMAND_STREAM = "trunx:commands"
COMMAND_GROUP = "engine"


def originated_key(call_id: str) -> str:
    return f"trunx:call:{call_id}:originated"


ENGINES = "trunx:engines"
PACE_KEY = "trunx:pace"


def engine_key(engine: str) -> str:
    return f"trunx:engine:{engine}"


def engine_calls_key(engine: str) -> str:
    return f"trunx:engine:{engine}:calls"


def engine_reclaim_key(engine: str) -> str:
    return f"trunx:engine:{engine}:reclaim"


def engine_originate_stream(engine: str) -> str:
    return f"trunx:originate-to:{engine}"


def engine_command_stream(engine: str | None) -> str:
    """Where commands about a call go: the stream of the engine holding it, or the shared
    one (a queued call no engine holds yet; any engine may cancel it)."""
    return f"trunx:commands:{engine}" if engine else COMMAND_STREAM


def call_engine_key(call_id: str) -> str:
    return f"trunx:call:{call_id}:engine"


def account_pace_key(account: str) -> str:
    return f"trunx:pace:{account}"


def command_stream_for(redis, call_id: str) -> str:
    """Where the API sends a command about a call (sync client): the stream of the engine
    holding it (its live hash names it, else the engine that originated it), or the
    shared stream when none does (a queued call; an engine from before engine ids)."""
    engine = redis.hget(live_call_key(call_id), "engine") or redis.get(call_engine_key(call_id))
    return engine_command_stream(engine or None)


LIVE_TTL = 120            # seconds; the engine refreshes live keys well within it
ACTION_TTL = 7 * 24 * 3600


def live_call_key(call_id: str) -> str:
    return f"trunx:live:{call_id}"


def live_calls_key(account: str) -> str:
    return f"trunx:live-calls:{account}"


def action_key(action_id: str) -> str:
    return f"trunx:action:{action_id}"


# a speak action's sentences after the first, as the API renders them (admin_api.call_actions.
# speech pushes {file, name, duration} or {error}; the engine pops them in order)
SPEECH_TTL = 600


def speech_parts_key(action_id: str) -> str:
    return f"trunx:speech:{action_id}:parts"


def speech_stop_key(action_id: str) -> str:
    """Set by the engine when the speak ended early: render and stage no more parts."""
    return f"trunx:speech:{action_id}:stop"


IDEMPOTENCY_TTL = 24 * 3600   # seconds a POST's Idempotency-Key answers its first response


def idempotency_key(account: str, key_digest: str) -> str:
    """A POST's Idempotency-Key (its sha256, so any bytes a client sends make a safe key):
    {state: pending|done, fp, ...} (admin_api/idempotency.py)."""
    return f"trunx:idem:{account}:{key_digest}"
