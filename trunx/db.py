"""Opening the database: `connect(config)` makes it, binds the models to it (their
DatabaseProxy, trunx.models.proxy), checks its schema version (trunx/migrations: migrates
it when the config allows, refuses to start on an old one otherwise), and returns it.
Callers keep what it returns (a Store holds it, trunx/store.py) and hand it on.

SQLite is the embedded default (WAL, so the engine and API workers read while one writes;
a busy timeout instead of "database is locked"). A `postgresql://` URL selects PostgreSQL
through psycopg 3 (the `postgres` extra), with a pool of connections per process
(db_pool_size, db_pool_timeout, db_pool_recycle).
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import peewee

from trunx import migrations, models

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",   # durable across process crashes under WAL; fsync at checkpoints
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


_LOCK_WAIT = 10.0    # seconds a connection waits out another's lock (busy handler, pragmas)


class _SqliteDatabase(peewee.SqliteDatabase):
    """Its pragmas set again after "database is locked": switching a new file to WAL
    needs a lock that SQLite may refuse at once, without its busy handler, while another
    process does the same (several `trunx db migrate` started together did)."""

    def _set_pragmas(self, conn):
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                return super()._set_pragmas(conn)
            except (sqlite3.OperationalError, peewee.OperationalError) as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class Prepared:
    """A peewee query whose SQL is built once per bound database and then run with fresh
    parameters through a plain cursor, returning raw rows (stored text, not Python values).

    For the API's per-request reads: building a peewee query and model instances costs
    ~100 us a query, more than the index probe itself. `build` returns the query with
    placeholder values; `rows(database, *params)` passes new values in the same order."""

    def __init__(self, build):
        self._build = build
        self._compiled: tuple[peewee.Database, str] | None = None

    def rows(self, database: peewee.Database, *params) -> list[tuple]:
        return self._execute(database, params).fetchall()

    def run(self, database: peewee.Database, *params) -> int:
        """For an UPDATE or DELETE: the rows it changed (nothing is fetched)."""
        return self._execute(database, params).rowcount

    def _execute(self, database: peewee.Database, params: tuple):
        if isinstance(database, peewee.DatabaseProxy):   # the SQL is the bound database's
            database = database.obj
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            compiled = self._compiled = (database, self._build().sql()[0])
        return database.execute_sql(compiled[1], params)


class PreparedInsert:
    """An INSERT of a model's every column with its SQL built once per bound database, for
    the API's per-request writes: each value goes through its field's `db_value`, and a
    column not given gets the field's default as peewee's `create` would (building the
    INSERT cost ~0.5 ms a row, two rows a POST /api/voice). A model whose primary key is
    the database's (an AutoField) gets it back with RETURNING (SQLite 3.35+, PostgreSQL)."""

    def __init__(self, model: type[peewee.Model]):
        self._model = model
        self._compiled: tuple[peewee.Database, str] | None = None

    def create(self, database: peewee.Database, **values) -> peewee.Model:
        """The row inserted; returns the model instance (not re-read)."""
        if isinstance(database, peewee.DatabaseProxy):
            database = database.obj
        meta = self._model._meta
        auto = meta.primary_key if isinstance(meta.primary_key, peewee.AutoField) else None
        fields = [f for f in meta.sorted_fields if f is not auto]
        unknown = set(values) - {f.name for f in fields}
        if unknown:
            raise TypeError(f"{self._model.__name__} has no field {sorted(unknown)[0]!r}")
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            open_q, close_q = database.quote[0], database.quote[1]
            columns = ", ".join(f"{open_q}{f.column_name}{close_q}" for f in fields)
            marks = ", ".join(database.param for _ in fields)
            table = f"{open_q}{meta.table_name}{close_q}"
            returning = f" RETURNING {open_q}{auto.column_name}{close_q}" if auto else ""
            compiled = self._compiled = (
                database, f"INSERT INTO {table} ({columns}) VALUES ({marks}){returning}")
        for f in fields:
            if f.name not in values:
                default = f.default
                values[f.name] = default() if callable(default) else default
        cursor = database.execute_sql(compiled[1], [f.db_value(values[f.name]) for f in fields])
        if auto is not None:
            values[auto.name] = cursor.fetchone()[0]
        return self._model(**values)


def make_database(url: str, config) -> peewee.Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE: a transaction takes the write lock when it starts, waiting out
        # other writers under busy_timeout. A deferred one that reads first and then writes
        # fails with "database is locked" at once (no wait) if another writer committed in
        # between, which 50 concurrent POST /ivr did hit.
        return _SqliteDatabase(path, pragmas=_SQLITE_PRAGMAS, timeout=_LOCK_WAIT,
                               lock_type="IMMEDIATE")
    if url.startswith(("postgres://", "postgresql://")):
        from playhouse.db_url import parse
        from playhouse.pool import PooledPostgresqlDatabase

        params = parse(url)
        name = params.pop("database")
        # lock_timeout stands for SQLite's busy_timeout: a statement waiting that long
        # on a lock (a row, the writer lock) fails instead of hanging its request
        options = f"-c lock_timeout={int(_SQLITE_PRAGMAS['busy_timeout'])}"
        params["options"] = f"{params['options']} {options}" if "options" in params else options
        # peewee keeps one connection per thread and, pooled, hands it back on close()
        # for the next thread instead of a new TCP connection and authentication.
        # timeout: how long a thread waits for a free one once all are taken.
        return PooledPostgresqlDatabase(
            name, max_connections=config.db_pool_size,
            timeout=config.db_pool_timeout,
            stale_timeout=config.db_pool_recycle,
            prefer_psycopg3=True, **params)
    raise ValueError(f"unsupported database url: {url!r}")


def connect(config) -> peewee.Database:
    """Bind the models to the configured database and check its schema version: behind
    this trunx, it is migrated (db_auto_migrate) or refused (trunx.migrations.ensure).

    The models can be bound to one database at a time, so a second connect to the same URL
    (a second app in one process, an engine beside an app in a test) returns the database
    they are bound to: a transaction on it and the models' queries share a connection."""
    db = models.proxy.obj
    if getattr(db, "trunx_url", None) != config.db_url:
        db = make_database(config.db_url, config)
        db.trunx_url = config.db_url
        models.proxy.initialize(db)
    db.connect(reuse_if_open=True)
    migrations.ensure(db, auto=config.db_auto_migrate)
    return db



def close_unpooled(database: peewee.Database) -> None:
    """Close the calling thread's connection outright (pooled: not kept for reuse)."""
    if database.is_closed():
        return
    manual = getattr(database, "manual_close", None)   # playhouse.pool's
    if manual is not None:
        manual()
    else:
        database.close()


def close_all(database: peewee.Database) -> None:
    """Close every connection this process holds to `database`: the calling thread's, and
    on PostgreSQL every pooled one, idle or taken by another thread (for a process done
    with the database: a test's teardown, a bench between runs)."""
    close = getattr(database, "close_all", None)   # playhouse.pool's
    if close is not None:
        close()
    elif not database.is_closed():
        database.close()
