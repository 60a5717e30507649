"""IVR saves queued at once share one turn of the writer lock (trunx/ivr/group_commit.py):
each is stored and published as it would be alone, a save that fails (an id taken by
another save of the same turn) fails alone, and every outbox entry is marked done.
Real SQLite and Redis; the writer lock is held by the test (a second WriterLock on the
same file, as another worker would hold it) so that the saves queue up behind it."""
from __future__ import annotations

import threading

import peewee

from devtools.stack import wait_until
from tests.store_support import store_on
from trunx import group_commit, models, redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Ivr, IvrVersion, OutboxEntry
from trunx.store import WriterLock

TREE = {"nodes": {"a": {"audio": "welcome.wav", "gather": {"1": "b"}},
                  "b": {"action": "hangup"}}}


def test_saves_queued_together_commit_and_publish_in_one_turn(app, config, redis, tenant):
    store = store_on(redis)
    turns = []

    def published(saved):
        turns.append([version.ivr.ivr_id for version, _, _ in saved])
        ivr_store._published(redis, saved)

    saves = store.__dict__["ivr_saves"] = group_commit.GroupCommit(store, published)
    other_worker = WriterLock(models.proxy.obj)
    results: dict[int, object] = {}

    def save(n: int, ivr_id: str):
        try:
            results[n] = ivr_store.save(store, tenant.id, ivr_id, TREE, config, create=True)
        except Exception as exc:     # the duplicate's error, as the API would get it
            results[n] = exc

    names = [f"g{n}" for n in range(8)] + ["g3"]       # g3 twice: one of them must fail
    with other_worker:
        threads = [threading.Thread(target=save, args=(n, name))
                   for n, name in enumerate(names)]
        # the first save leads a turn: its batch taken, it waits for the lock
        threads[0].start()
        wait_until(lambda: saves._leading and not saves._queue, timeout=10,
                   message="the first save leading a turn")
        for t in threads[1:]:
            t.start()
        wait_until(lambda: len(saves._queue) == len(names) - 1, timeout=10,
                   message="the other saves queued behind the held lock")
    for t in threads:
        t.join(10)
    failed = [r for r in results.values() if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], peewee.IntegrityError), results
    assert sorted(len(t) for t in turns) == [1, 7], turns     # the duplicate was not published
    stored = {ivr.ivr_id: ivr for ivr in Ivr.select().where(Ivr.account == tenant.id)}
    assert sorted(stored) == sorted(set(names))
    for ivr_id, ivr in stored.items():
        assert [v.version for v in IvrVersion.select().where(IvrVersion.ivr == ivr)] == [1]
        assert redis.get(redis_schema.ivr_current_key(tenant.id, ivr_id)) == "1"
    assert OutboxEntry.select().where(OutboxEntry.done_at.is_null()).count() == 0
    assert OutboxEntry.select().count() == len(set(names))   # the failed save owes nothing


def test_a_publish_that_fails_fails_its_turn_and_leaves_what_is_owed(app, config, redis,
                                                                    tenant):
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # nothing listens on port 1; no retries (the test is about what is left, not waiting)
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                           retry=Retry(NoBackoff(), 0))
    store = store_on(dead)
    try:
        ivr_store.save(store, tenant.id, "owed", TREE, config, create=True)
    except redis_lib.ConnectionError:
        pass
    else:
        raise AssertionError("a save whose publish failed must raise")
    # stored, and owed to Redis: the engine's outbox sweep publishes it
    assert Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == "owed").current_version == 1
    (entry,) = OutboxEntry.select()
    assert entry.kind == "sync" and entry.done_at is None
