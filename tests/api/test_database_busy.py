"""A database that stays locked past its busy timeout (another process holding SQLite's
write lock) answers 503 database-busy with Retry-After, not 500, and leaves nothing."""
from __future__ import annotations

import sqlite3

from tests.api.conftest import state


def test_a_locked_database_is_503_with_retry_after(client, app, config, tenant, redis):
    assert client.get("/api/dids", headers=tenant.headers).status_code == 200
    # this thread's connection (opened by that request) waits 0.2 s, not the shipped 10 s
    app.extensions["trunx.store"].db.execute_sql("PRAGMA busy_timeout = 200")
    before = state(config, redis)
    holder = sqlite3.connect(config.sqlite_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")          # the write lock, as a long writer holds it
        r = client.post("/api/dids", headers=tenant.headers, json={"number": "+19495551234"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.status_code == 503, r.json
    assert r.headers["Retry-After"] == "1"
    assert r.json["error"]["code"] == "database-busy"
    assert state(config, redis) == before
    # and once the lock is gone, the same request goes through
    r = client.post("/api/dids", headers=tenant.headers, json={"number": "+19495551234"})
    assert r.status_code == 201
