"""The engine's live-call index against a real Redis, read back by the API's own readers
(admin_api.call_actions.service), which is what a client of the API sees."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from admin_api.call_actions import service as call_actions
from admin_api.call_actions.service import Conflict
from agi_server.calls.live_index import LiveIndex
from trunx import redis_schema


def _evals(redis) -> int:
    stats = redis.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def _fields(n: int) -> dict:
    return {"account": "acc", "direction": "inbound", "status": "in-progress",
            "channel": f"PJSIP/x-{n}", "from": "+12025550100", "to": "+19495551234",
            "since": "2026-11-21T15:00:00.000Z"}


@pytest.fixture
async def aio(redis_server):
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_calls_announced_together_cost_one_command_and_read_back(redis, aio):
    index = LiveIndex(aio)
    index.announce("warm", "other", _fields(0), since=1.0)    # the script gets loaded
    await index.flush()
    before = _evals(redis)
    for n in range(50):
        index.announce(f"call-{n}", "acc", _fields(n), since=1000.0 + n)
    await index.flush()
    assert (_evals(redis) - before, index.batches, index.failed) == (1, 2, 0)
    listed = call_actions.live_calls(redis, "acc")
    assert [c["call_uuid"] for c in listed] == [f"call-{n}" for n in range(50)]  # oldest first
    assert listed[7]["from"] == "+12025550100" and listed[7]["status"] == "in-progress"
    assert call_actions.live_call(redis, "acc", "acc", "call-7")["channel"] == "PJSIP/x-7"
    ttl = redis.ttl(redis_schema.live_call_key("call-7"))
    assert 0 < ttl <= redis_schema.LIVE_TTL


async def test_a_big_batch_is_split_into_bounded_script_calls(redis, aio):
    index = LiveIndex(aio)
    for n in range(1201):
        index.announce(f"call-{n}", "acc", _fields(n), since=float(n))
    await index.flush()
    assert (index.batches, index.failed) == (3, 0)              # 500 + 500 + 201
    assert redis.zcard(redis_schema.live_calls_key("acc")) == 1201


async def test_an_update_and_a_withdrawal_reach_the_api(redis, aio):
    index = LiveIndex(aio)
    index.announce("a", "acc", _fields(1), since=1.0)
    index.announce("b", "acc", _fields(2), since=2.0)
    await index.flush()
    index.update("a", status="transferred")
    index.withdraw("b")
    await index.flush()
    with pytest.raises(Conflict) as refused:
        call_actions.live_call(redis, "acc", "acc", "a")
    assert refused.value.details["status"] == "transferred"
    assert not redis.exists(redis_schema.live_call_key("b"))
    assert redis.zrange(redis_schema.live_calls_key("acc"), 0, -1) == ["a"]
    index.update("b", status="transferred")      # withdrawn: nothing comes back
    await index.flush()
    assert not redis.exists(redis_schema.live_call_key("b"))


async def test_a_call_gone_before_its_announcement_costs_nothing(redis, aio):
    index = LiveIndex(aio, delay=0.05)
    before = _evals(redis)
    index.announce("brief", "acc", _fields(1), since=1.0)
    index.withdraw("brief")
    await index.flush()
    assert _evals(redis) == before
    assert not redis.exists(redis_schema.live_call_key("brief"))
    assert not redis.exists(redis_schema.live_calls_key("acc"))


async def test_announcements_wait_for_the_delay_but_status_changes_do_not(redis, aio):
    index = LiveIndex(aio, delay=30.0)
    index.announce("a", "acc", _fields(1), since=1.0)
    await asyncio.sleep(0.2)
    assert not redis.exists(redis_schema.live_call_key("a"))      # still batching
    index.update("a", status="transferred")       # the API must answer 409 from now on
    await asyncio.wait_for(index.flush(), 5)
    assert redis.hget(redis_schema.live_call_key("a"), "status") == "transferred"
    index.announce("b", "acc", _fields(2), since=2.0)
    await asyncio.sleep(0.2)
    index.withdraw("a")                           # over: written now, with b's announcement
    await asyncio.wait_for(index.flush(), 5)
    assert not redis.exists(redis_schema.live_call_key("a"))
    assert redis.exists(redis_schema.live_call_key("b"))


async def test_refresh_brings_back_what_redis_lost(redis, aio):
    index = LiveIndex(aio)
    index.announce("a", "acc", _fields(1), since=1.0)
    index.announce("b", "other", _fields(2), since=2.0)
    await index.flush()
    index.update("a", status="transferred")
    await index.flush()
    redis.flushall()
    await index.refresh()
    assert redis.hget(redis_schema.live_call_key("a"), "status") == "transferred"
    assert redis.zrange(redis_schema.live_calls_key("other"), 0, -1) == ["b"]
    assert redis.ttl(redis_schema.live_call_key("b")) > 0


async def test_an_unreachable_redis_is_counted_not_raised(redis, aio):
    dead = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True)
    index = LiveIndex(dead)
    index.announce("a", "acc", _fields(1), since=1.0)
    await index.flush()
    assert (index.batches, index.failed) == (0, 1)
    assert "a" in index.live            # still live: the next refresh tries again
    await dead.aclose()
