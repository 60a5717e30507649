"""Opening the database: `connect(config)` makes it, binds the models to it (their
DatabaseProxy, trunx.models.proxy), creates missing tables and columns, and returns it.
Callers keep what it returns (a Store holds it, trunx/store.py) and hand it on.

SQLite is the embedded default (WAL, so the engine and API workers read while one writes;
a busy timeout instead of "database is locked"). A `postgresql://` URL selects PostgreSQL.
"""
from __future__ import annotations

from pathlib import Path

import peewee

from trunx import models

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
    placeholder values; `rows(database, *params)` passes new values in the same order."""

    def __init__(self, build):
        self._build = build
        self._compiled: tuple[peewee.Database, str] | None = None

    def rows(self, database: peewee.Database, *params) -> list[tuple]:
        compiled = self._compiled
        if compiled is None or compiled[0] is not database:
            compiled = self._compiled = (database, self._build().sql()[0])
        return database.execute_sql(compiled[1], params).fetchall()


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
    """Bind the models to the configured database, create missing tables, and add columns
    that newer models have and an older database lacks.

    The models can be bound to one database at a time, so a second connect to the same URL
    (a second app in one process, an engine beside an app in a test) returns the database
    they are bound to: a transaction on it and the models' queries share a connection."""
    db = models.proxy.obj
    if getattr(db, "trunx_url", None) != config.db_url:
        db = make_database(config.db_url)
        db.trunx_url = config.db_url
        models.proxy.initialize(db)
    db.connect(reuse_if_open=True)
    db.create_tables([m for m in models.ALL_MODELS if m is not models.CallNodeVisit],
                     safe=True)
    _create_visits(db)
    add_missing_columns(db, models.ALL_MODELS)
    return db


def _create_visits(db: peewee.Database) -> None:
    """The per-node stats' table (trunx.ivr.visits), filled from the calls already
    recorded in the transaction that creates it: an interrupted fill leaves no table, so
    the next start fills it again. Its indexes are built after the fill (sorting once is
    far cheaper than inserting into them row by row). Another process starting at the same
    time waits for the write lock, then finds the table there."""
    from trunx.ivr import visits

    table = models.CallNodeVisit._meta.table_name
    if db.table_exists(table):
        return
    with db.atomic():
        if db.table_exists(table):
            return
        schema = models.CallNodeVisit._schema
        schema.create_table()
        visits.backfill(db)
        schema.create_indexes()


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
