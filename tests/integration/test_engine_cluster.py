"""Several engines, the Redis half (agi_server/cluster/), against a real Redis and a real
engine with no Asterisk: the pace all engines share, and what a live engine takes over
from a dead one (its queued calls, its commands, its calls)."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_exceptions

from admin_api.voice import service as voice_service
from agi_server.cluster.pace import SharedPace
from devtools.stack import free_port
from devtools.stack.procs import wait_until_async
from tests.engine_support import make_config, running_engine
from tests.integration.outbound_support import queue_call
from trunx import accounts, db, redis_schema
from trunx.models import Call, Did, new_uuid, utcnow

FROM = "+14155550142"


@pytest.fixture
async def aio(redis_server):
    clients = [aioredis.Redis.from_url(redis_server.url, decode_responses=True)
               for _ in range(2)]
    yield clients
    for client in clients:
        await client.aclose()


async def test_two_engines_share_one_pace_and_an_account_keeps_its_own(redis, aio):
    cps = 20
    east, west = SharedPace(aio[0], cps), SharedPace(aio[1], cps)
    t0 = time.monotonic()
    waits = []
    for i in range(10):                  # back to back, from two engines in turn
        ok, wait = await (east if i % 2 else west).reserve("", 0.0)
        assert ok
        waits.append(wait + (time.monotonic() - t0))     # the slot, from t0
    gaps = [b - a for a, b in zip(waits, waits[1:], strict=False)]
    # one slot every 1/cps seconds, whichever engine reserved it (Redis's clock decides)
    assert all(abs(gap - 1 / cps) < 0.02 for gap in gaps), gaps
    # an account with its own 2 calls a second: due again only 0.5 s after its slot
    ok, _ = await east.reserve("acc_a", 2.0)
    assert ok
    ok, due_in = await west.reserve("acc_a", 2.0)
    assert not ok and 0.3 < due_in <= 0.5 + 10 / cps
    # and an account that is not due reserved nothing of the shared pace
    ok, wait = await west.reserve("acc_b", 0.0)
    assert ok and wait <= 12 / cps


def queued_call(redis, account_id: str, to: str, status: str = "initiated") -> str:
    now = utcnow()
    call_id = new_uuid()
    Call.create(id=call_id, call_sid=voice_service.new_call_sid(), account=account_id,
                direction="outbound", from_number=FROM, to_number=to, status=status,
                created_at=now, queued_at=now)
    return call_id


async def test_a_dead_engines_work_is_taken_over(tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url, engine_id="live", engine_heartbeat=0.2,
                      engine_dead_after=1.0, ami_port=free_port())   # no Asterisk: AMI down
    db.connect(cfg)
    account = accounts.create_account("cluster")
    Did.create(number=FROM, account=account)
    # the dead engine "ghost": it had read three queued calls, placed one (ringing), had a
    # play action waiting on its stream, and held an inbound call
    queued = [queued_call(redis, account.id, f"+1202555010{i}") for i in range(3)]
    for call_id in queued:
        queue_call(redis, call_id, account.id)
    redis.xgroup_create(redis_schema.ORIGINATE_STREAM, redis_schema.ORIGINATE_GROUP, id="0",
                        mkstream=True)
    redis.xreadgroup(redis_schema.ORIGINATE_GROUP, "ghost",
                     {redis_schema.ORIGINATE_STREAM: ">"}, count=10)
    ringing = queued_call(redis, account.id, "+12025550120", status="ringing")
    redis.set(redis_schema.originated_key(ringing), "sent")
    redis.set(redis_schema.call_engine_key(ringing), "ghost")
    redis.hset(redis_schema.action_key("act-1"), mapping={"status": "queued", "call": "x"})
    redis.xadd(redis_schema.engine_command_stream("ghost"),
               {"call": "x", "action": "play", "id": "act-1", "params": "{}"})
    inbound = new_uuid()
    redis.hset(redis_schema.live_call_key(inbound), mapping={
        "account": account.id, "direction": "inbound", "status": "in-progress",
        "from": "+12025550199", "to": FROM, "since": "2026-11-21T15:00:00.000Z",
        "engine": "ghost", "ivr": "menu", "ivr_version": "2",
        "path": json.dumps([{"node": "welcome", "event": "enter", "t": 0.0}])})
    redis.zadd(redis_schema.live_calls_key(account.id), {inbound: 1.0})
    redis.sadd(redis_schema.engine_calls_key("ghost"), inbound)
    redis.zadd(redis_schema.ENGINES, {"ghost": 1})        # listed, but no heartbeat

    async with running_engine(cfg) as engine:
        await wait_until_async(lambda: "ghost" in engine.reclaimer.reclaimed, timeout=10,
                               message="the live engine took over")
        taken = engine.reclaimer.reclaimed["ghost"]
        # the queued calls are the live engine's now (it waits for its AMI to place them)
        pending = redis.xpending_range(redis_schema.ORIGINATE_STREAM,
                                       redis_schema.ORIGINATE_GROUP, "-", "+", 10)
        assert {p["consumer"] for p in pending} == {"live"} and len(pending) == 3
        assert all(Call.get_by_id(c).status == "initiated" for c in queued)
        assert not redis.exists(redis_schema.originated_key(queued[0]))   # never sent
    assert taken == {"queued": 3, "handed": 0, "commands": 1, "outbound_lost": 1,
                     "inbound_lost": 1}
    row = Call.get_by_id(ringing)
    assert (row.status, row.end_reason) == ("failed", "lost")
    action = redis.hgetall(redis_schema.action_key("act-1"))
    assert action["status"] == "failed"
    assert json.loads(action["error"])["code"] == "call-not-in-progress"
    row = Call.get_by_id(inbound)
    assert (row.direction, row.outcome, row.end_reason, row.from_number, row.ivr_id,
            row.ivr_version) == ("inbound", "lost", "lost", "+12025550199", "menu", 2)
    assert row.path == [{"node": "welcome", "event": "enter", "t": 0.0}]
    assert not redis.exists(redis_schema.live_call_key(inbound))
    assert redis.zscore(redis_schema.live_calls_key(account.id), inbound) is None
    assert redis.zscore(redis_schema.ENGINES, "ghost") is None
    # a clean stop: the live engine left the spread at once (no free capacity), and is
    # taken for dead only once its heartbeat expires
    assert redis.hget(redis_schema.engine_key("live"), "free") == "0"
    assert 0 < redis.pttl(redis_schema.engine_key("live")) <= 1000


async def test_a_command_for_a_call_another_engine_holds_is_passed_to_it(tmp_path, redis_server,
                                                                          redis):
    """The API looked before the engine named itself, so the hangup went to the shared
    stream: the engine that reads it does not hold the call and passes it on."""
    cfg = make_config(tmp_path, redis_server.url, engine_id="live", engine_heartbeat=0.2,
                      engine_dead_after=5.0, ami_port=free_port())
    db.connect(cfg)
    redis.hset(redis_schema.engine_key("other"), mapping={"free": 10, "accounts": "{}"})
    redis.expire(redis_schema.engine_key("other"), 60)
    redis.zadd(redis_schema.ENGINES, {"other": int(time.time() * 1000)})
    redis.set(redis_schema.call_engine_key("call-1"), "other")
    async with running_engine(cfg) as engine:
        await wait_until_async(lambda: "other" in engine.membership.peers, timeout=5,
                               message="the live engine sees the other")
        voice_service.request_hangup(redis, "call-1")      # routed: straight to "other"
        redis.xadd(redis_schema.COMMAND_STREAM, {"call": "call-1", "action": "hangup"})
        passed = await wait_until_async(
            lambda: redis.xlen(redis_schema.engine_command_stream("other")) == 2
            and redis.xrange(redis_schema.engine_command_stream("other")), timeout=5,
            message="the shared entry passed on")
    assert [f for _, f in passed] == [{"call": "call-1", "action": "hangup"}] * 2
    assert redis.xlen(redis_schema.COMMAND_STREAM) == 0


async def test_a_missing_heartbeat_is_a_death_only_after_a_whole_dead_after_of_redis(
        redis, aio):
    """After a Redis outage or a Sentinel failover every engine's hash is gone at once: the
    first engine back must give the others engine_dead_after to beat again before it takes
    their work (and closes their live calls as lost)."""
    from agi_server.cluster.membership import Membership
    from trunx import config as trunx_config

    cfg = trunx_config.load(env={}, engine_id="east", engine_dead_after=0.6)
    east = Membership(cfg, aio[0], "east", lambda: (0, {}))
    redis.zadd(redis_schema.ENGINES, {"west": 1})           # listed, no heartbeat hash
    await east.beat()
    assert (east.dead, east.trusted) == ([], False)         # Redis only just answered
    t0 = time.monotonic()
    while east.dead != ["west"]:
        assert time.monotonic() - t0 < 5, "west never taken for dead"
        await asyncio.sleep(0.1)
        await east.beat()
    assert east.trusted and time.monotonic() - t0 >= 0.5
    down = Membership(cfg, aioredis.Redis(port=free_port()), "east", lambda: (0, {}))
    down._up_since, down.trusted = 0.0, True
    with pytest.raises(redis_exceptions.ConnectionError):
        await down.beat()                                   # Redis away: trust starts over
    assert (down.trusted, down._up_since) == (False, None)
    await down.redis.aclose()
