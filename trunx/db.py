"""The database handle: one peewee DatabaseProxy, bound at start-up by `connect(config)`.

SQLite is the embedded default (WAL, so the engine and API workers read while one writes;
a busy timeout instead of "database is locked"). A `postgresql://` URL selects PostgreSQL.
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import peewee

proxy = peewee.DatabaseProxy()

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",   # durable across process crashes under WAL; fsync at checkpoints
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


class Prepared:
    """A peewee query whose SQL is built once per bound database and then run with fresh
    parameters through a plain cursor, returning raw rows (stored text, not Python values).

    For the API's per-request reads: building a peewee query and model instances costs
    ~100 us a query, more than the index probe itself. `build` returns the query with
    placeholder values; `rows(*params)` passes new values in the same order."""

    def __init__(self, build):
        self._build = build
        self._compiled: tuple[peewee.Database, str] | None = None

    def rows(self, *params) -> list[tuple]:
        database = proxy.obj
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            compiled = self._compiled = (database, self._build().sql()[0])
        return database.execute_sql(compiled[1], params).fetchall()


class WriterLock:
    """Serialises one kind of write transaction among the threads and processes (API
    workers) sharing a SQLite file: a waiter blocks in the kernel (flock on
    `<database>-writers.lock`) and wakes the moment the holder is done, where a waiter on
    SQLite's own lock sleeps in its busy handler (1, 2, 5, ... up to 100 ms at a time) and
    oversleeps most commits. Writers that don't take it (the engine) still meet SQLite's
    lock and busy_timeout, so it changes who waits how, never what is stored. Off SQLite it
    only serialises this process's threads."""

    def __init__(self):
        self._threads = threading.Lock()   # flock does not exclude threads sharing one fd
        # (pid, database path, fd): a forked child opens its own, and so does a process
        # whose proxy was bound to another file since (the tests bind one per test)
        self._fd: tuple[int, str, int] | None = None

    def _file(self) -> int | None:
        database = proxy.obj
        path = getattr(database, "database", None)
        if not isinstance(database, peewee.SqliteDatabase) or path in (None, ":memory:"):
            return None
        if self._fd is None or self._fd[:2] != (os.getpid(), path):
            if self._fd is not None and self._fd[0] == os.getpid():
                os.close(self._fd[2])   # not locked: we only hold it inside `with`
            self._fd = (os.getpid(), path, os.open(f"{path}-writers.lock",
                                                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                                   0o600))
        return self._fd[2]

    def __enter__(self):
        self._threads.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self._fd is not None and self._fd[0] == os.getpid():
                fcntl.flock(self._fd[2], fcntl.LOCK_UN)
        finally:
            self._threads.release()


def make_database(url: str) -> peewee.Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE: a transaction takes the write lock when it starts, waiting out
        # other writers under busy_timeout. A deferred one that reads first and then writes
        # fails with "database is locked" at once (no wait) if another writer committed in
        # between, which 50 concurrent POST /ivr did hit.
        return peewee.SqliteDatabase(path, pragmas=_SQLITE_PRAGMAS, timeout=10,
                                     lock_type="IMMEDIATE")
    if url.startswith(("postgres://", "postgresql://")):
        from playhouse.db_url import connect as url_connect

        return url_connect(url)
    raise ValueError(f"unsupported database url: {url!r}")


def connect(config) -> peewee.Database:
    """Bind the proxy to the configured database, create missing tables, and add columns
    that newer models have and an older database lacks."""
    from trunx import models

    db = make_database(config.db_url)
    proxy.initialize(db)
    db.connect(reuse_if_open=True)
    db.create_tables(models.ALL_MODELS, safe=True)
    add_missing_columns(db, models.ALL_MODELS)
    return db


def add_missing_columns(db: peewee.Database, model_classes) -> list[str]:
    """The schema only ever grows by nullable (or defaulted) columns, so bringing an old
    database up to date is adding them; anything else needs a real migration and fails."""
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(db)
    added = []
    for model in model_classes:
        table = model._meta.table_name
        have = {c.name for c in db.get_columns(table)}
        for f in model._meta.sorted_fields:
            if f.column_name in have:
                continue
            if not f.null and f.default is None:
                raise RuntimeError(f"{table}.{f.column_name} is new and NOT NULL without a "
                                   "default: this database needs a migration")
            migrate(migrator.add_column(table, f.column_name, f))
            added.append(f"{table}.{f.column_name}")
    return added
