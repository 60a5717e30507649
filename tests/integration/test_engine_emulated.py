"""The engine end to end over a real socket, real Redis and a real SQLite file, with a
scripted FastAGI peer (bench.agi_emulator) standing in for Asterisk. The same behaviours
are proven on the real Asterisk in test_ivr_asterisk.py; these run in well under a second
each and cover the edges Asterisk can't easily be made to produce."""
from __future__ import annotations

import asyncio
import copy
import time

import pytest
import redis as redis_lib

from bench.agi_emulator import Scenario, run_session
from tests.engine_support import SEED_DID, SEED_TREE, make_config, running_engine, seed_account
from tests.store_support import store_on
from trunx.ivr import store as ivr_store
from trunx.models import Call, Did, Suppression


@pytest.fixture
def cfg(tmp_path, redis_server):
    return make_config(tmp_path, redis_server.url, transfer_dial="Local/agent@test-agent")


@pytest.fixture
def seeded(cfg, redis):
    return seed_account(cfg, redis)


async def call(engine, **kw) -> tuple:
    result = await run_session("127.0.0.1", engine.server.port, Scenario(**kw))
    assert result.error is None
    for _ in range(200):     # the record is written just after the socket closes
        row = Call.get_or_none(Call.to_number == kw.get("did", SEED_DID),
                               Call.id.not_in(_seen), Call.ended_at.is_null(False))
        if row:
            _seen.add(row.id)
            return result, row
        await asyncio.sleep(0.01)
    raise AssertionError("no call record was saved")


_seen: set = set()


def nodes(row):
    return [p["node"] for p in row.path if p["event"] == "enter"]


async def test_1_then_1_reaches_transfer(cfg, seeded):
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "1"])
    assert nodes(row) == ["welcome", "has_business", "transfer_ai"]
    assert any(c.startswith('EXEC Dial "Local/agent@test-agent,30"') for c in res.commands)
    assert row.outcome == "transferred" and row.status == "completed"
    assert engine.server.stats["errors"] == 0


async def test_1_then_2_hears_not_qualified_and_hangs_up(cfg, seeded):
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "2"])
    assert nodes(row) == ["welcome", "has_business", "unqualified"]
    assert row.outcome == "hangup"
    assert res.commands[-2] == 'STREAM FILE "not_qualified" ""'
    assert res.commands[-1] == "HANGUP"


async def test_9_suppresses_the_caller(cfg, redis, seeded):
    account, _ = seeded
    async with running_engine(cfg) as engine:
        _, row = await call(engine, keys=["9"], caller="+14155550199")
    assert row.outcome == "suppressed"
    entry = Suppression.get(Suppression.number == "+14155550199")
    assert (entry.account_id, entry.did, entry.node, entry.call_id) == \
        (account.id, SEED_DID, "dnc", row.id)
    assert redis.sismember(f"trunx:dnc:{account.id}", "+14155550199")


async def test_no_input_replays_until_max_tries(cfg, redis):
    # the emulator, like Asterisk, answers a question nobody answers when its wait is over
    tree = copy.deepcopy(SEED_TREE)
    tree["nodes"]["welcome"]["timeout"] = 0.5
    seed_account(cfg, redis, tree=tree)
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=[])
    assert nodes(row) == ["welcome"] * 3
    assert row.outcome == "max-tries"
    # each try is one question: the prompt and its wait in one GET OPTION
    assert sum(c == 'GET OPTION "welcome" "0123456789*#" 500' for c in res.commands) == 3
    assert not any(c.startswith(("WAIT FOR DIGIT", "STREAM FILE \"welcome\""))
                   for c in res.commands)
    assert res.commands[-2:] == ['STREAM FILE "vm-goodbye" ""', "HANGUP"]


async def test_invalid_digit_replays_the_node(cfg, seeded):
    async with running_engine(cfg) as engine:
        _, row = await call(engine, keys=["5", "1", "2"])
    assert nodes(row) == ["welcome", "welcome", "has_business", "unqualified"]
    assert [p["event"] for p in row.path][:3] == ["enter", "prompt", "invalid"]


async def test_caller_hangup_mid_prompt_leaves_a_completed_record(cfg, seeded):
    async with running_engine(cfg) as engine:
        _, row = await call(engine, keys=["1"], hangup_after=2)   # ANSWER, GET OPTION, then gone
        assert engine.server.stats["errors"] == 0
    assert row.status == "completed" and row.outcome == "caller-hangup"
    assert row.duration is not None and row.duration >= 0


async def test_publish_during_a_call_pins_the_old_version(cfg, redis, seeded):
    account, _ = seeded
    new_tree = {"nodes": {**SEED_TREE["nodes"],
                          "welcome": {**SEED_TREE["nodes"]["welcome"], "audio": "welcome2"}}}
    async with running_engine(cfg) as engine:
        live = asyncio.create_task(run_session(
            "127.0.0.1", engine.server.port, Scenario(keys=["1", "2"], reply_delay=0.15)))
        await asyncio.sleep(0.1)      # the live call has started on version 1
        ivr_store.save(store_on(redis), account.id, "qualify-business", new_tree, cfg, create=False)
        await asyncio.sleep(0.05)     # let the announcement arrive
        after, row2 = await call(engine, keys=["1", "2"])
        live_res = await live
    assert any(c.startswith('GET OPTION "welcome" ') for c in live_res.commands)
    assert not any('"welcome2"' in c for c in live_res.commands)
    assert after.commands[1].startswith('GET OPTION "welcome2" ')
    assert row2.ivr_version == 2


async def test_an_ivr_deleted_and_created_again_runs_its_new_tree(cfg, redis, seeded):
    """Version numbers start again at 1 after a delete: a warm cache must not serve the
    old v1 for the new one."""
    account, ivr = seeded
    new_tree = {"nodes": {**SEED_TREE["nodes"],
                          "welcome": {**SEED_TREE["nodes"]["welcome"], "audio": "welcome2"}}}
    async with running_engine(cfg) as engine:
        before, _ = await call(engine, keys=["1", "2"])
        did = Did.get(Did.number == SEED_DID)
        ivr_store.unassign(store_on(redis), did)
        ivr_store.delete(store_on(redis), ivr)
        again, version, _ = ivr_store.save(store_on(redis), account.id, "qualify-business",
                                           new_tree, cfg, create=True)
        ivr_store.assign(store_on(redis), again, did)
        await asyncio.sleep(0.1)     # let the announcements arrive
        after, row = await call(engine, keys=["1", "2"])
    assert before.commands[1].startswith('GET OPTION "welcome" ')
    assert after.commands[1].startswith('GET OPTION "welcome2" '), after.commands
    assert row.ivr_version == 1


async def test_warm_cache_costs_no_redis_round_trip(cfg, seeded):
    async with running_engine(cfg) as engine:
        await call(engine, keys=["1", "2"])
        reads = engine.cache.redis_reads
        await call(engine, keys=["1", "2"])
        assert engine.cache.redis_reads == reads


async def test_a_burst_on_a_cold_cache_reads_redis_once_per_key(cfg, seeded):
    async with running_engine(cfg) as engine:
        results = await asyncio.gather(*(
            run_session("127.0.0.1", engine.server.port, Scenario(keys=["1", "2"]))
            for _ in range(200)))
        assert [r.error for r in results] == [None] * 200
        assert all(r.commands[1].startswith('GET OPTION "welcome" ') for r in results)
        assert engine.cache.redis_reads == 3     # the DID, its IVR's current version, the tree


async def test_unknown_did_plays_fallback(cfg, seeded):
    async with running_engine(cfg) as engine:
        res, row = await call(engine, did="+12125550000")
    assert res.commands == ["ANSWER", 'STREAM FILE "ss-noservice" ""', "HANGUP"]
    assert (row.outcome, row.end_reason) == ("fallback", "no-ivr-for-did")


async def test_redis_unreachable_plays_fallback(tmp_path, redis_server, seeded):
    cfg = make_config(tmp_path, "redis://127.0.0.1:1/0")   # nothing listens on port 1
    async with running_engine(cfg, redis_up=False) as engine:
        res, row = await call(engine, keys=["1"])
        assert engine.server.stats["errors"] == 0
    assert res.commands[1] == 'STREAM FILE "ss-noservice" ""'
    assert row.end_reason == "redis-unavailable"


async def test_hash_key_and_a_two_digit_key(cfg, redis):
    tree = {"nodes": {"menu": {"audio": "m", "gather": {"#": "bye", "12": "bye"}},
                      "bye": {"action": "hangup"}}}
    seed_account(cfg, redis, tree=tree, did="+19495550001", ivr_id="hash")
    async with running_engine(cfg) as engine:
        res, row = await call(engine, did="+19495550001", keys=["#"])
        res2, row2 = await call(engine, did="+19495550001", keys=["1", "2"])
    assert res.commands[1] == 'GET OPTION "m" "0123456789*#" 5000'
    assert nodes(row) == ["menu", "bye"] and nodes(row2) == ["menu", "bye"]
    assert res2.commands[2] == 'WAIT FOR DIGIT 5000'    # the second key of "12"


async def test_bad_peers_are_dropped_without_stalling_others(cfg, seeded):
    async with running_engine(cfg) as engine:
        port = engine.server.port
        # half a header, then close
        t0 = time.monotonic()
        rd, wr = await asyncio.open_connection("127.0.0.1", port)
        wr.write(b"agi_network: yes\nagi_chan")
        wr.close()
        # a slow peer that never finishes its header
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)
        slow_w.write(b"agi_network: yes\n")
        # a good call meanwhile completes normally
        _, row = await call(engine, keys=["1", "2"])
        assert row.outcome == "hangup"
        assert time.monotonic() - t0 < 1.0
        async with asyncio.timeout(5.5):
            assert await slow_r.read() == b""       # dropped by the server
        slow_w.close()
        assert engine.server.stats["bad_header"] == 2


async def test_peer_not_on_allow_list_is_refused(tmp_path, redis_server, seeded):
    cfg = make_config(tmp_path, redis_server.url, agi_allow=("10.9.9.9",))
    async with running_engine(cfg) as engine:
        res = await run_session("127.0.0.1", engine.server.port, Scenario(keys=["1"]))
        # closed before any command; a reset when our agi_* block was still unread
        assert res.commands == []
        assert res.closed_by_server or "reset" in (res.error or "")
        assert engine.server.stats["refused"] == 1


async def test_a_redis_that_lost_its_data_is_rebuilt_from_sqlite(tmp_path):
    """Redis restarts empty while the engine runs: the engine notices on reconnecting,
    resyncs from SQLite, and calls to the DID work again without anyone stepping in."""
    from devtools.stack import RedisServer

    with RedisServer(tmp_path / "own-redis") as own:
        cfg = make_config(tmp_path, own.url)
        client = redis_lib.Redis.from_url(own.url, decode_responses=True)
        seed_account(cfg, client)
        async with running_engine(cfg) as engine:
            _, before = await call(engine, keys=["1", "2"])
            own.restart()                                   # no persistence: all gone
            async with asyncio.timeout(10):
                while engine.resyncs == 0 or not engine.cache.listening:
                    await asyncio.sleep(0.05)
            _, after = await call(engine, keys=["1", "2"])
        assert before.outcome == after.outcome == "hangup"
        assert client.exists("trunx:did:" + SEED_DID)
        client.close()
