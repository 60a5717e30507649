"""Redis killed (kill -9) under the engine, with a scripted FastAGI peer for Asterisk: a DID
the engine has served keeps running its last-known tree (marked stale in the path), a DID
it never served hears the fallback, and once Redis answers again (empty: resynced from
SQLite) the engine re-checks what it served and caches normally within a second. The same
on the real Asterisk with SIP callers: test_redis_away_asterisk.py."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis as redis_lib

from bench.agi_emulator import Scenario, run_session
from devtools.stack import RedisServer
from tests.engine_support import SEED_DID, SEED_TREE, make_config, running_engine, seed_account
from tests.store_support import store_on
from trunx import redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Call

UNSEEN_DID = "+19495550002"      # assigned too, but never called before Redis went away


async def call(engine, did=SEED_DID, keys=("1", "2")) -> Call:
    """One call, and its final row (ended_at set: a row exists from the call's start)."""
    result = await run_session("127.0.0.1", engine.server.port,
                               Scenario(did=did, keys=list(keys)))
    assert result.error is None
    seen = engine.seen_rows = getattr(engine, "seen_rows", set())
    async with asyncio.timeout(5):
        while True:
            row = Call.get_or_none(Call.to_number == did, Call.id.not_in(seen),
                                   Call.ended_at.is_null(False))
            if row is not None:
                seen.add(row.id)
                return row
            await asyncio.sleep(0.01)


def nodes(row):
    return [p["node"] for p in row.path if p["event"] == "enter"]


async def test_a_known_did_runs_its_last_tree_while_redis_is_away(tmp_path):
    with RedisServer(tmp_path / "own-redis") as own:
        cfg = make_config(tmp_path, own.url)
        client = redis_lib.Redis.from_url(own.url, decode_responses=True)
        account, _ = seed_account(cfg, client)
        seed_account(cfg, client, did=UNSEEN_DID, ivr_id="other", account=account)
        async with running_engine(cfg) as engine:
            warm = await call(engine)
            # a slow caller whose call spans the outage (its index entry is lost with Redis)
            slow = asyncio.create_task(run_session("127.0.0.1", engine.server.port, Scenario(
                did=SEED_DID, keys=["1", "2"], reply_delay=1.0)))
            async with asyncio.timeout(5):
                while not engine.live_records() or not client.exists(
                        redis_schema.live_call_key(engine.live_records()[0].id)):
                    await asyncio.sleep(0.01)
            (held,) = engine.live_records()
            own.kill()
            async with asyncio.timeout(5):    # until then, its cache is as good as Redis
                while engine.cache.listening:
                    await asyncio.sleep(0.01)
            stale = await call(engine)
            unseen = await call(engine, did=UNSEEN_DID)
            assert engine.server.stats["errors"] == 0
            # a scrape still answers while Redis is away, and counts the stale call
            scraped = (await engine.metrics.exposition()).decode()
            assert "trunx_ivr_trees_stale_total 1.0" in scraped

            own.start()                       # empty: the engine resyncs from SQLite
            back = time.monotonic()
            async with asyncio.timeout(5):
                while not (engine.cache.listening and engine.cache.rechecked == 1):
                    await asyncio.sleep(0.01)
            resumed = time.monotonic() - back
            # the call in progress is in the live index again, before it ends
            assert client.exists(redis_schema.live_call_key(held.id)) and not slow.done()
            assert (await slow).error is None
            engine.seen_rows.add(held.id)     # not to be taken for the next call's row
            fresh = await call(engine)
            after_unseen = await call(engine, did=UNSEEN_DID)

        client.close()
    assert nodes(warm) == nodes(stale) == nodes(fresh) == ["welcome", "has_business",
                                                          "unqualified"]
    assert stale.outcome == fresh.outcome == "hangup"
    assert stale.path[0]["event"] == "tree-stale" and stale.path[0]["version"] == 1
    assert [p for p in warm.path + fresh.path if p["event"] == "tree-stale"] == []
    assert (unseen.outcome, unseen.end_reason) == ("fallback", "redis-unavailable")
    assert nodes(after_unseen) == ["welcome", "has_business", "unqualified"]
    assert engine.resyncs == 1 and engine.cache.recheck_changed == 0
    assert resumed < 1.5, f"caching resumed {resumed:.2f} s after Redis answered"


async def test_a_redis_back_empty_is_not_taken_for_an_unassigned_did(tmp_path):
    """Redis restarts empty and the engine has not rebuilt it yet: the DID's key is
    missing, but that is not "no IVR for this DID": the last-known tree still runs."""
    with RedisServer(tmp_path / "own-redis") as own:
        cfg = make_config(tmp_path, own.url)
        client = redis_lib.Redis.from_url(own.url, decode_responses=True)
        seed_account(cfg, client)
        async with running_engine(cfg) as engine:
            await call(engine)
            await engine.cache.stop()         # no resubscription, so no resync
            own.restart()
            assert client.dbsize() == 0
            row = await call(engine)
        client.close()
    assert nodes(row) == ["welcome", "has_business", "unqualified"]
    assert row.path[0]["event"] == "tree-stale"


async def test_a_tree_saved_while_redis_was_away_runs_once_it_is_back(tmp_path):
    """The DID was served stale v1 while an IVR save reached the database but not Redis;
    Redis comes back empty, the engine rebuilds it from the database, re-checks the DID it
    served stale (its version moved: counted) and the next call runs v2."""
    new_tree = {"nodes": {**SEED_TREE["nodes"],
                          "welcome": {**SEED_TREE["nodes"]["welcome"], "audio": "welcome2"}}}
    with RedisServer(tmp_path / "own-redis") as own:
        cfg = make_config(tmp_path, own.url)
        client = redis_lib.Redis.from_url(own.url, decode_responses=True)
        account, _ = seed_account(cfg, client)
        async with running_engine(cfg) as engine:
            await call(engine)
            own.kill()
            async with asyncio.timeout(5):
                while engine.cache.listening:
                    await asyncio.sleep(0.01)
            stale = await call(engine)
            with pytest.raises(redis_lib.exceptions.ConnectionError):
                ivr_store.save(store_on(client), account.id, "qualify-business", new_tree,
                               cfg, create=False)       # the database has v2; Redis never did
            own.start()
            async with asyncio.timeout(5):
                while engine.cache.rechecked == 0:
                    await asyncio.sleep(0.01)
            fresh = await call(engine)
        client.close()
    assert (stale.ivr_version, fresh.ivr_version) == (1, 2)
    assert engine.cache.recheck_changed == 1
    assert not any(p["event"] == "tree-stale" for p in fresh.path)
