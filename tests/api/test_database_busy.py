"""A database that stays locked past its busy timeout (another process holding SQLite's
write lock, or a PostgreSQL session holding the table past lock_timeout) answers 503
database-busy with Retry-After, not 500, and leaves nothing."""
from __future__ import annotations

import sqlite3

import peewee

from tests.api.conftest import state


def test_a_locked_database_is_503_with_retry_after(client, app, config, tenant, redis):
    assert client.get("/api/dids", headers=tenant.headers).status_code == 200
    database = app.extensions["trunx.store"].db
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    # this thread's connection (opened by that request) waits 0.2 s, not the shipped 10 s
    database.execute_sql("SET lock_timeout = 200" if postgres else "PRAGMA busy_timeout = 200")
    before = state(config, redis)
    if postgres:
        import psycopg

        holder = psycopg.connect(config.database_url, autocommit=True)
        lock = "LOCK TABLE did IN ACCESS EXCLUSIVE MODE"   # as a long migration holds it
    else:
        holder = sqlite3.connect(config.sqlite_path, isolation_level=None)
        lock = "BEGIN IMMEDIATE"          # the write lock, as a long writer holds it
    try:
        if postgres:
            holder.execute("BEGIN")
        holder.execute(lock)
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
