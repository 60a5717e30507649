"""Publishing an IVR version to Redis (trunx/ivr/store.py saves and resyncs through it):
the version's compiled program, the current-version pointer and the announcement on the
engines' channel, in one script."""
from __future__ import annotations

import hashlib

from redis.exceptions import NoScriptError

from trunx import redis_schema
from trunx.ivr import program as ivr_program
from trunx.models import IvrVersion

# Saves publish under the writer lock, so on SQLite (where the lock spans processes) they
# reach Redis in commit order. Off SQLite the lock spans only one process, and two saves
# of one IVR can still arrive in either order: so the pointer moves only forward (a late,
# older version is stored but not made current and not announced). `force` is for
# resync, which states what SQLite holds even if that is older.
# One script: the version, the pointer test and the announcement in one round trip.
_PUBLISH_LUA = """
redis.call('SET', KEYS[1], ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[2]))
if ARGV[3] == '1' or cur == nil or cur < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
return 0
"""
_PUBLISH_SHA = hashlib.sha1(_PUBLISH_LUA.encode()).hexdigest()


def _publish_args(version: IvrVersion, *, force: bool = False, program=None):
    if program is None:
        program = ivr_program.decode(version.compiled)
    account, ivr_id = program.account, program.ivr_id
    keys = (redis_schema.ivr_version_key(account, ivr_id, version.version),
            redis_schema.ivr_current_key(account, ivr_id))
    message = redis_schema.dumps({"kind": "ivr", "account": account, "ivr_id": ivr_id,
                                  "version": version.version})
    args = (redis_schema.dumps(ivr_program.encode(program)), version.version, "1" if force else "0",
            redis_schema.PUBLISH_CHANNEL, message)
    return keys, args


def publish(redis, version: IvrVersion, *, force: bool = False, program=None) -> bool:
    """Store the version and make it current unless a newer one is (any, if `force`);
    announce only if the pointer moved. Returns whether it moved. `program` is the
    version's Program when the caller has it; else it is decoded from the row (which
    also brings a row stored in an older format up to the current one)."""
    keys, args = _publish_args(version, force=force, program=program)
    try:
        moved = redis.evalsha(_PUBLISH_SHA, len(keys), *keys, *args)
    except NoScriptError:   # a fresh (or flushed) Redis: EVAL loads it for next time
        moved = redis.eval(_PUBLISH_LUA, len(keys), *keys, *args)
    return bool(moved)


def publish_many(redis, saved: list) -> None:
    """publish() of each (IvrVersion, Program) in `saved`, in order, in one round trip."""
    if len(saved) == 1:
        publish(redis, saved[0][0], program=saved[0][1])
        return
    calls = [_publish_args(version, program=program) for version, program in saved]
    for attempt in (1, 2):
        pipe = redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(_PUBLISH_SHA, len(keys), *keys, *args)
        results = pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in results) or attempt == 2:
            break
        # a fresh (or flushed) Redis ran none of them: the script is loaded and the
        # batch sent again (a pointer that moved stays; a repeated announcement is one
        # more reload of an unchanged version)
        redis.script_load(_PUBLISH_LUA)
    for r in results:
        if isinstance(r, Exception):
            raise r
