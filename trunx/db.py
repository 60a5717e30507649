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
    """Bind the proxy to the configured database and create missing tables."""
    from trunx import models

    db = make_database(config.db_url)
    proxy.initialize(db)
    db.connect(reuse_if_open=True)
    db.create_tables(models.ALL_MODELS, safe=True)
    return db
