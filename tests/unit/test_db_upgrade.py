"""An older database gains the columns newer models add, with its rows intact."""
import sqlite3

import pytest

from trunx import config, db, models
from trunx.models import Call


def test_connect_adds_columns_an_older_database_lacks(tmp_path):
    cfg = config.load(env={}, data_dir=str(tmp_path))
    db.connect(cfg).close()
    # make it look like a database from before the `metadata` and `end_reason` columns
    raw = sqlite3.connect(cfg.sqlite_path)
    raw.execute("ALTER TABLE call DROP COLUMN metadata")
    raw.execute("ALTER TABLE call DROP COLUMN end_reason")
    raw.execute("INSERT INTO call (id, direction, status, provider, created_at) "
                "VALUES ('c1', 'inbound', 'completed', 'asterisk', '2026-01-01 00:00:00')")
    raw.commit()
    raw.close()

    db.connect(cfg)
    names = {c.name for c in models.proxy.get_columns("call")}
    assert {"metadata", "end_reason"} <= names
    row = Call.get_by_id("c1")
    assert row.direction == "inbound" and row.metadata is None


def test_a_new_required_column_is_refused(tmp_path):
    import peewee

    class Thing(peewee.Model):
        name = peewee.CharField()

        class Meta:
            database = models.proxy

    cfg = config.load(env={}, data_dir=str(tmp_path))
    database = db.connect(cfg)
    database.execute_sql("CREATE TABLE thing (id INTEGER PRIMARY KEY)")
    with pytest.raises(RuntimeError, match="needs a migration"):
        db.add_missing_columns(database, [Thing])
