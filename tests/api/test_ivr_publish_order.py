"""The current-version pointer in Redis against saves that reach Redis out of order, and
the engine's tree cache reading it. Real SQLite (the app's file), real Redis.

On SQLite a save publishes under the writer lock, which spans the API's processes, so
saves reach Redis in commit order (tests/api/test_ivr_delete_race.py); off SQLite the lock
spans one process only, and of two updates of one IVR the older one can publish last. The
late arrival is replayed here by calling the publish step directly, in that order."""
from __future__ import annotations

import copy

import redis.asyncio as aioredis

from agi_server.ivr.tree_cache import TreeCache
from tests.api.conftest import SEED_TREE
from tests.store_support import store_on
from trunx import redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Ivr, IvrVersion

DID = "+19495551234"


def tree_playing(sound: str) -> dict:
    tree = copy.deepcopy(SEED_TREE)
    tree["nodes"]["welcome"]["audio"] = f"{sound}.wav"
    return tree


def three_versions(client, tenant, config, redis) -> dict[int, IvrVersion]:
    """v1..v3 of one IVR, each playing its own welcome sound, assigned to DID."""
    rows = {}
    for n in (1, 2, 3):
        _, row, _ = ivr_store.save(store_on(redis), tenant.id, "qualify-business",
                                   tree_playing(f"welcome{n}"),
                                   config, create=n == 1)
        rows[row.version] = row
    assert sorted(rows) == [1, 2, 3]
    assert client.post("/api/dids", json={"number": DID},
                       headers=tenant.headers).status_code == 201
    assert client.post("/ivr/qualify-business/assign", json={"did": DID},
                       headers=tenant.headers).status_code == 200
    return rows


async def engine_sees(redis_server) -> dict:
    """What a freshly started, listening engine cache serves for DID's next call."""
    aio = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    cache = TreeCache(aio)
    await cache.start()
    try:
        await cache.wait_listening()
        return await cache.lookup(DID)
    finally:
        await cache.stop()
        await aio.aclose()


def pointer(redis, tenant) -> int:
    return int(redis.get(redis_schema.ivr_current_key(tenant.id, "qualify-business")))


async def test_an_older_save_published_last_does_not_move_the_pointer_back(
        client, tenant, config, redis, redis_server):
    rows = three_versions(client, tenant, config, redis)
    # the race: the v3 save publishes first, the v2 save's publish arrives after it
    ivr_store.publish(redis, rows[3])
    ivr_store.publish(redis, rows[2])

    assert Ivr.get(Ivr.account == tenant.id).current_version == 3
    assert pointer(redis, tenant) == 3
    tree = await engine_sees(redis_server)
    assert tree.version == 3
    assert tree.nodes["welcome"].audio == "welcome3"


async def test_resync_sets_an_older_version_when_sqlite_says_so(
        client, tenant, config, redis, redis_server):
    """A database restored from a backup taken at v2, next to a Redis that saw v3: resync
    makes Redis follow the database, backwards."""
    rows = three_versions(client, tenant, config, redis)
    rows[3].delete_instance()
    Ivr.update(current_version=2).where(Ivr.account == tenant.id).execute()
    assert pointer(redis, tenant) == 3

    assert ivr_store.resync(store_on(redis))["ivrs"] == 1
    assert pointer(redis, tenant) == 2
    tree = await engine_sees(redis_server)
    assert tree.version == 2
    assert tree.nodes["welcome"].audio == "welcome2"

    # and the next save moves on from there
    _, row, _ = ivr_store.save(store_on(redis), tenant.id, "qualify-business",
                               tree_playing("welcome4"),
                               config, create=False)
    assert row.version == 3 and pointer(redis, tenant) == 3
