"""The database handle: one peewee DatabaseProxy, bound at start-up by `connect(config)`.

SQLite is the embedded default (WAL, so the engine and API workers read while one writes;
a busy timeout instead of "database is locked"). A `postgresql://` URL selects PostgreSQL.
"""
from __future__ import annotations

from pathlib import Path

import peewee

proxy = peewee.DatabaseProxy()

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",   # durable across process crashes under WAL; fsync at checkpoints
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


def make_database(url: str) -> peewee.Database:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(path, pragmas=_SQLITE_PRAGMAS, timeout=10)
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
