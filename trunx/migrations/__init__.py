"""Versioned schema changes: the `schema_migration` table records which numbered migrations
a database has had; `migrate(db)` runs the missing ones, in order, once.

A migration is a module `mNNNN_<what>.py` in this package with `up(ops)` (ops: the
idempotent steps in trunx/migrations/ops.py). They are found by name; the numbers run
1, 2, 3, ... without gaps (`ALL` is checked at import). Adding a column is a model field in
trunx/models.py plus a file here:

    # m0002_call_engine.py
    from trunx.models import Call

    def up(ops):
        ops.add_column(Call, "engine_id")

Migration 1 creates the models' tables as they are, so on a fresh database the later steps
find their columns there already: every step is written to be a no-op on a schema that has
its end state (the ops skip what exists). On a database made before migrations (columns
added at start by every process), migration 1 adds what it lacks and marks it version 1.

One process migrates at a time: the whole run is one transaction that first takes a lock
(PostgreSQL: pg_advisory_xact_lock; SQLite: BEGIN IMMEDIATE, its write lock), then reads
the recorded versions, so a second migrator waits and then finds nothing to do. DDL is
transactional on both, so a failed migration leaves the database at the last version.

`ensure(db, auto=...)` is what every process does at start (trunx.db.connect): one read of
the version; behind and `auto` (config `db_auto_migrate`), it migrates; behind and not
`auto`, it refuses to start with SchemaOutOfDate, naming `trunx db migrate`. A database
ahead of this code (a newer trunx migrated it) is always refused.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

import peewee

from trunx import models
from trunx.migrations.ops import Ops, dialect

# pg_advisory_xact_lock's key for migrating ("trunx-mg" as eight bytes)
MIGRATE_LOCK_KEY = int.from_bytes(b"trunx-mg", "big") & 0x7FFF_FFFF_FFFF_FFFF


class SchemaOutOfDate(RuntimeError):
    """The database's schema version is not the one this trunx runs on."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    module: ModuleType


def _discover() -> list[Migration]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        m = re.fullmatch(r"m(\d{4})_(\w+)", info.name)
        if m:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append(Migration(int(m.group(1)), m.group(2), module))
    found.sort(key=lambda mig: mig.version)
    numbers = [mig.version for mig in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must run 1..N without gaps: {numbers}")
    return found


ALL: list[Migration] = _discover()
HEAD = ALL[-1].version


class SchemaMigration(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.TextField()
    applied_at = peewee.DateTimeField(default=models.utcnow)

    class Meta:
        database = models.proxy
        table_name = "schema_migration"


def current_version(db: peewee.Database) -> int:
    """The highest migration the database has had; 0 for a database without the table."""
    if not db.table_exists(SchemaMigration._meta.table_name):
        return 0
    found = SchemaMigration.select(peewee.fn.MAX(SchemaMigration.version)).scalar()
    return found or 0


def _lock(db: peewee.Database) -> None:
    """Called first inside the migrating transaction; held until it ends."""
    if dialect(db) == "postgresql":
        # a second migrator waits the first out, however long (not trunx's lock_timeout)
        db.execute_sql("SET LOCAL lock_timeout = 0")
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
    # SQLite: trunx opens it with lock_type IMMEDIATE, so the transaction's BEGIN took the
    # database's write lock already (a second migrator waits in busy_timeout)


def migrate(db: peewee.Database) -> list[str]:
    """Run the migrations the database lacks; returns their names (empty: up to date)."""
    ran = []
    with db.atomic():
        _lock(db)
        db.create_tables([SchemaMigration], safe=True)
        have = current_version(db)
        if have > HEAD:
            raise _ahead(have)
        ops = Ops(db)
        for mig in ALL[have:]:
            mig.module.up(ops)
            SchemaMigration.create(version=mig.version, name=mig.name)
            ran.append(f"{mig.version:04d}_{mig.name}")
    return ran


def ensure(db: peewee.Database, *, auto: bool) -> None:
    have = current_version(db)
    if have == HEAD:
        return
    if have > HEAD:
        raise _ahead(have)
    if not auto:
        raise SchemaOutOfDate(
            f"the database schema is at version {have}, this trunx needs {HEAD}: run "
            "`trunx db migrate` (or set db_auto_migrate = true to migrate at start)")
    migrate(db)


def _ahead(have: int) -> SchemaOutOfDate:
    return SchemaOutOfDate(
        f"the database schema is at version {have}, newer than this trunx knows ({HEAD}): "
        "run the trunx that migrated it, or upgrade this one")
