"""Versioned migrations (trunx/migrations) on the test database (SQLite, or PostgreSQL with
TRUNX_TEST_DB=postgresql): a fresh database and one from before migrations both end at the
newest version with every model column; a process refuses an old schema when it may not
migrate, and a newer one always; several migrators at once run each migration once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import peewee
import pytest

from tests import db_support
from trunx import config, db, migrations, models
from trunx.migrations.ops import Ops
from trunx.models import Call

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path, url, **overrides):
    return config.load(env={}, data_dir=str(tmp_path), database_url=url, **overrides)


def _columns(database, model) -> set[str]:
    return {c.name for c in database.get_columns(model._meta.table_name)}


def test_the_migrations_are_numbered_from_one_without_gaps():
    assert [m.version for m in migrations.ALL] == list(range(1, migrations.HEAD + 1))
    assert migrations.ALL[0].name == "baseline"


def test_a_fresh_database_gets_every_table_and_the_newest_version(tmp_path):
    cfg = _config(tmp_path, db_support.empty_database_url(tmp_path))
    database = db.connect(cfg)
    assert migrations.current_version(database) == migrations.HEAD
    for model in models.ALL_MODELS:
        assert _columns(database, model) == {f.column_name for f in model._meta.sorted_fields}


def test_a_database_from_before_migrations_is_completed_and_marked(tmp_path):
    """As every process left it with columns added at start: no migration table, and here
    older than the models (no `metadata`, `end_reason`); its rows survive."""
    url = db_support.empty_database_url(tmp_path)
    database = db.make_database(url, _config(tmp_path, url))
    models.proxy.initialize(database)
    database.create_tables(models.ALL_MODELS)
    database.execute_sql("ALTER TABLE call DROP COLUMN metadata")
    database.execute_sql("ALTER TABLE call DROP COLUMN end_reason")
    database.execute_sql("INSERT INTO call (id, direction, status, provider, created_at) "
                         "VALUES ('c1', 'inbound', 'completed', 'asterisk', "
                         "'2026-01-01 00:00:00')")
    assert migrations.current_version(database) == 0
    db.close_all(database)
    models.proxy.initialize(None)

    database = db.connect(_config(tmp_path, url))
    assert migrations.current_version(database) == migrations.HEAD
    assert {"metadata", "end_reason"} <= _columns(database, Call)
    row = Call.get_by_id("c1")
    assert row.direction == "inbound" and row.metadata is None


def test_a_new_required_column_is_refused(tmp_path):
    class Thing(peewee.Model):
        name = peewee.CharField()

        class Meta:
            database = models.proxy
            table_name = "thing"

    database = db.connect(_config(tmp_path, db_support.database_url()))
    database.execute_sql("CREATE TABLE thing (id INTEGER PRIMARY KEY)")
    with pytest.raises(RuntimeError, match="NOT NULL without a default"):
        Ops(database).add_column(Thing, "name")


def test_without_auto_migrate_an_old_schema_is_refused_until_trunx_db_migrate(tmp_path):
    url = db_support.empty_database_url(tmp_path)
    cfg = _config(tmp_path, url, db_auto_migrate=False)
    with pytest.raises(migrations.SchemaOutOfDate, match="trunx db migrate"):
        db.connect(cfg)
    ini = tmp_path / "trunx.ini"
    ini.write_text(f"[trunx]\ndata_dir = {tmp_path}\ndatabase_url = {url}\n"
                   "db_auto_migrate = false\n")
    done = subprocess.run([sys.executable, "-m", "trunx", "--config", str(ini), "db", "migrate"],
                          capture_output=True, text=True, cwd=ROOT, env=_env())
    assert done.returncode == 0, done.stderr
    assert "migrated 0001_baseline" in done.stdout
    assert migrations.current_version(db.connect(cfg)) == migrations.HEAD


def test_a_schema_newer_than_this_trunx_is_refused(tmp_path):
    database = db.connect(_config(tmp_path, db_support.database_url()))
    migrations.SchemaMigration.create(version=migrations.HEAD + 1, name="from_the_future")
    with pytest.raises(migrations.SchemaOutOfDate, match="newer than this trunx"):
        migrations.ensure(database, auto=True)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_migrators_started_together_run_each_migration_once(tmp_path):
    url = db_support.empty_database_url(tmp_path)
    ini = tmp_path / "trunx.ini"
    ini.write_text(f"[trunx]\ndata_dir = {tmp_path}\ndatabase_url = {url}\n")
    argv = [sys.executable, "-m", "trunx", "--config", str(ini), "db", "migrate"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env=_env()) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert sum("migrated 0001_baseline" in out for out, _ in outputs) == 1
    db.connect(_config(tmp_path, url))
    versions = [m.version for m in migrations.SchemaMigration.select()]
    assert sorted(versions) == list(range(1, migrations.HEAD + 1))


def test_a_database_at_version_1_gains_the_columns_of_later_migrations(tmp_path):
    """Marked version 1 before accounts had their own limits and agents their transfers:
    migration 2 adds those columns, and an existing agent reads `transfers` as []."""
    url = db_support.empty_database_url(tmp_path)
    database = db.make_database(url, _config(tmp_path, url))
    models.proxy.initialize(database)
    database.create_tables(models.ALL_MODELS)
    database.create_tables([migrations.SchemaMigration])
    migrations.SchemaMigration.create(version=1, name="baseline")
    account = models.Account.create(id="acct_old", name="old")
    models.Agent.create(id="ag_old", account=account, name="a", prompt="p")
    database.execute_sql("ALTER TABLE account DROP COLUMN max_concurrent_calls")
    database.execute_sql("ALTER TABLE account DROP COLUMN calls_per_second")
    database.execute_sql("ALTER TABLE agent DROP COLUMN transfers")
    db.close_all(database)
    models.proxy.initialize(None)

    database = db.connect(_config(tmp_path, url))
    assert migrations.current_version(database) == migrations.HEAD
    assert {"max_concurrent_calls", "calls_per_second"} <= _columns(database, models.Account)
    assert models.Agent.get_by_id("ag_old").transfers == []
    assert models.Account.get_by_id(account.id).max_concurrent_calls is None
