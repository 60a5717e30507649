"""A save racing DELETE /ivr/:id (and a re-create of the id): Redis must end up holding
what SQLite holds, and the engine's tree cache must serve it. Real SQLite (or
PostgreSQL), real Redis.

The race: a save commits v2, then, before it publishes, the IVR is deleted (and created
again at v1). Published last, the stale v2 would move Redis's forward-only pointer past
the new v1, and calls would run the deleted tree. The save runs in a thread whose Redis
client (a real one) holds its publish at a gate, so the test acts between the commit and
the publish. There it probes the writer lock's file the way another API worker would:
free means nothing stops a delete now (the bug), so the test lets the delete run whole
in that window and then releases the publish, which reproduces the race exactly; held
means the delete must queue behind the publish (the fix)."""
from __future__ import annotations

import fcntl
import os
import threading

import peewee
import pytest

from tests.api.test_ivr_publish_order import DID, engine_sees, pointer, tree_playing
from tests.store_support import store_on
from trunx import models, redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Ivr
from trunx.store import WRITER_LOCK_KEY

IVR = "qualify-business"
HANG_GUARD = 30   # seconds; only stops a broken run hanging, never decides a result


class GatedRedis:
    """A real Redis client whose command `gated` (EVALSHA: a save's publish; DELETE: a
    delete's cleanup) waits until `go` is set; `reached` says it is waiting."""

    def __init__(self, client, gated: str):
        self._client, self._gated = client, gated
        self.reached = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name):
        command = getattr(self._client, name)
        if name != self._gated:
            return command

        def held_back(*args):
            self.reached.set()
            self.go.wait(HANG_GUARD)
            return command(*args)
        return held_back


class Worker(threading.Thread):
    def __init__(self, fn):
        super().__init__(daemon=True)
        self._fn, self.error, self.result = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self._fn()
        except BaseException as exc:   # handed to the test thread by finish()
            self.error = exc
        finally:
            models.proxy.close()   # this thread's own SQLite connection

    def finish(self):
        self.join(HANG_GUARD)
        assert not self.is_alive(), "thread stuck"
        if self.error is not None:
            raise self.error
        return self.result


def writer_lock_free() -> bool:
    """Could another process take the IVR writer lock now? Asked as a second API worker
    would: on SQLite, flock on a fresh descriptor of its file (trunx.store.WriterLock's
    `<database>-writers.lock`); on PostgreSQL, pg_try_advisory_lock from another session."""
    database = models.proxy.obj
    if isinstance(database, peewee.PostgresqlDatabase):
        import psycopg

        with psycopg.connect(database.trunx_url, autocommit=True) as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()
            return bool(got[0])   # (closing the session releases the probe's lock)
    fd = os.open(f"{database.database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)   # also releases the probe's lock, if it got it
    return True


@pytest.mark.parametrize("recreate", [True, False], ids=["delete-recreate", "delete"])
async def test_a_save_publishing_around_a_delete_leaves_redis_as_sqlite(
        client, tenant, config, redis, redis_server, recreate):
    h = tenant.headers
    ivr_store.save(store_on(redis), tenant.id, IVR, tree_playing("welcome1"), config, create=True)
    assert client.post("/api/dids", json={"number": DID}, headers=h).status_code == 201
    assert client.post(f"/ivr/{IVR}/assign", json={"did": DID}, headers=h).status_code == 200

    def delete_and_recreate() -> list[int]:
        codes = [client.delete(f"/api/dids/{DID}", headers=h).status_code,   # unassigns
                 client.delete(f"/ivr/{IVR}", headers=h).status_code]
        if recreate:
            codes += [client.post("/ivr", json=tree_playing("fresh"), headers=h).status_code,
                      client.post("/api/dids", json={"number": DID}, headers=h).status_code,
                      client.post(f"/ivr/{IVR}/assign", json={"did": DID},
                                  headers=h).status_code]
        return codes

    gated = GatedRedis(redis, "evalsha")
    saver = Worker(lambda: ivr_store.save(store_on(gated), tenant.id, IVR, tree_playing("stale"),
                                          config, create=False))
    assert gated.reached.wait(HANG_GUARD)
    # the save has committed v2 and is about to publish it
    assert Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == IVR).current_version == 2
    free = writer_lock_free()
    deleter = Worker(delete_and_recreate)
    if free:   # nothing holds the delete back: let it run whole before the publish
        deleter.finish()
    gated.go.set()
    saver.finish()
    assert deleter.finish() == ([200, 200, 201, 201, 200] if recreate else [200, 200])

    ivr = Ivr.get_or_none(Ivr.account == tenant.id, Ivr.ivr_id == IVR)
    if recreate:
        assert ivr.current_version == 1
        tree = await engine_sees(redis_server)
        assert (tree.version, tree.nodes["welcome"].audio) == (1, "fresh")
        assert pointer(redis, tenant) == 1
        assert redis.get(redis_schema.ivr_version_key(tenant.id, IVR, 2)) is None
    else:
        assert ivr is None
        assert redis.keys(f"*{IVR}*") == []   # no pointer, no version left behind
        assert await engine_sees(redis_server) is None
    assert not free, "the save published outside the writer lock"


def test_a_delete_cleans_redis_up_under_the_writer_lock(client, tenant, config, redis):
    """The other half: between a delete's commit and its Redis cleanup no save (nor a
    re-create) can publish, because the lock is still held there."""
    ivr, _, _ = ivr_store.save(store_on(redis), tenant.id, IVR, tree_playing("welcome1"), config,
                               create=True)
    gated = GatedRedis(redis, "delete")
    deleter = Worker(lambda: ivr_store.delete(store_on(gated), ivr))
    assert gated.reached.wait(HANG_GUARD)
    # the delete has committed and is about to clean Redis up
    assert Ivr.get_or_none(Ivr.account == tenant.id, Ivr.ivr_id == IVR) is None
    free = writer_lock_free()
    gated.go.set()
    assert deleter.finish() is True
    assert not free, "the delete cleaned Redis up outside the writer lock"
    assert redis.keys(f"*{IVR}*") == []
