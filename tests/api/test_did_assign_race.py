"""DID-map changes racing each other: Redis's DID map must end up saying what SQLite says,
and the engine's tree cache must route the number there. Real SQLite, real Redis.

The races: an assign commits, then, before its Redis write, a competing assign of the same
number (to another IVR) or a DELETE of the number runs whole; written last, the first
assign's stale entry would route calls to an IVR SQLite no longer assigns (or for a number
SQLite no longer has). Likewise a DID delete that unassigns, publishes, and only then
deletes the row lets an assign land in between. As in test_ivr_delete_race.py, the first
change runs in a thread whose real Redis client holds one command at a gate; there the
test probes the writer lock's file: free means the competitor can run whole in the window
(the bug, reproduced exactly), held means the competitor must queue (the fix)."""
from __future__ import annotations

import json

import pytest

from admin_api import create_app
from tests.api.test_ivr_delete_race import HANG_GUARD, GatedRedis, Worker, writer_lock_free
from tests.api.test_ivr_publish_order import DID, engine_sees, tree_playing
from tests.store_support import store_on
from trunx import redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Did, Ivr

FIRST, OTHER = "qualify-business", "after-hours"


def two_ivrs_and_a_did(tenant, config, redis) -> Ivr:
    """IVRs FIRST (returned) and OTHER, each playing its own sound, and DID, unassigned."""
    first, _, _ = ivr_store.save(store_on(redis), tenant.id, FIRST, tree_playing(FIRST), config,
                                 create=True)
    tree = {**tree_playing(OTHER), "id": OTHER}
    ivr_store.save(store_on(redis), tenant.id, OTHER, tree, config, create=True)
    Did.create(number=DID, account=tenant.id)
    return first


def sqlite_route() -> str | None:
    """The IVR id SQLite assigns DID to; None if unassigned or not registered."""
    did = Did.get_or_none(Did.number == DID)
    return did.ivr.ivr_id if did is not None and did.ivr_id else None


def redis_route(redis) -> str | None:
    raw = redis.get(redis_schema.did_key(DID))
    return json.loads(raw)["ivr_id"] if raw else None


async def engine_route(redis_server) -> str | None:
    """The IVR a freshly started, listening engine cache runs for DID's next call."""
    tree = await engine_sees(redis_server)
    return tree.ivr_id if tree else None


async def assert_routes(redis, redis_server, expected: str | None):
    assert sqlite_route() == expected
    assert redis_route(redis) == expected, "Redis's DID map disagrees with SQLite"
    assert await engine_route(redis_server) == expected


def race(first: Worker, gated: GatedRedis, competitor) -> tuple[bool, Worker]:
    """With `first` held at its gate: probe the lock, start the competitor (letting it
    finish first if nothing holds it back), release `first`. Returns (free, competitor)."""
    assert gated.reached.wait(HANG_GUARD)
    free = writer_lock_free()
    rival = Worker(competitor)
    if free:   # nothing stops the competitor now: let it run whole inside the window
        rival.finish()
    gated.go.set()
    first.finish()
    return free, rival


@pytest.mark.parametrize("competitor", ["assign-other", "delete-did"])
async def test_an_assign_writing_redis_late_leaves_the_map_as_sqlite(
        client, tenant, config, redis, redis_server, competitor):
    h = tenant.headers
    first = two_ivrs_and_a_did(tenant, config, redis)
    if competitor == "assign-other":
        request, expected = (lambda: client.post(f"/ivr/{OTHER}/assign", json={"did": DID},
                                                 headers=h)), OTHER
    else:
        request, expected = (lambda: client.delete(f"/api/dids/{DID}", headers=h)), None

    gated = GatedRedis(redis, "set")   # the assign's DID-map write
    assigner = Worker(lambda: ivr_store.assign(store_on(gated), first, Did.get(Did.number == DID)))
    assert gated.reached.wait(HANG_GUARD)
    assert sqlite_route() == FIRST   # committed, not yet in Redis
    free, rival = race(assigner, gated, request)

    assert rival.finish().status_code == 200
    await assert_routes(redis, redis_server, expected)
    assert not free, "the assign wrote Redis outside the writer lock"


async def test_a_did_delete_racing_an_assign_leaves_no_route(
        client, tenant, config, redis, redis_server):
    """The DID delete's announcement is held (its unassign is in Redis by then); an assign
    of the number arriving there must not outlive the delete in Redis."""
    h = tenant.headers
    first = two_ivrs_and_a_did(tenant, config, redis)
    ivr_store.assign(store_on(redis), first, Did.get(Did.number == DID))
    gated = GatedRedis(redis, "publish")   # the announcement, after the Redis delete
    deleting = create_app(config, redis=gated).test_client()   # same database file
    deleter = Worker(lambda: deleting.delete(f"/api/dids/{DID}", headers=h))
    free, rival = race(deleter, gated, lambda: client.post(
        f"/ivr/{OTHER}/assign", json={"did": DID}, headers=h))

    assert deleter.finish().status_code == 200
    answer = rival.finish()
    await assert_routes(redis, redis_server, None)
    # the assign queued behind the delete and found the number gone
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "did-not-found")
    assert not free, "the DID delete changed the map outside the writer lock"


@pytest.mark.parametrize("recreate", [True, False], ids=["recreated", "deleted"])
async def test_an_assign_with_a_stale_ivr_reads_it_again(
        client, tenant, config, redis, redis_server, recreate):
    """The route reads the IVR before the lock is its; the IVR may be deleted (and created
    again, as a new row) by then. The assign must use what SQLite holds under the lock."""
    stale = two_ivrs_and_a_did(tenant, config, redis)
    assert client.delete(f"/ivr/{FIRST}", headers=tenant.headers).status_code == 200
    if recreate:
        assert client.post("/ivr", json=tree_playing("fresh"),
                           headers=tenant.headers).status_code == 201
        assert ivr_store.assign(store_on(redis), stale, Did.get(Did.number == DID)) is None
        tree = await engine_sees(redis_server)
        assert (tree.ivr_id, tree.nodes["welcome"].audio) == (FIRST, "fresh")
        await assert_routes(redis, redis_server, FIRST)
    else:
        with pytest.raises(ivr_store.Gone):
            ivr_store.assign(store_on(redis), stale, Did.get(Did.number == DID))
        await assert_routes(redis, redis_server, None)
