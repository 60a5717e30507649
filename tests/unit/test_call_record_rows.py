"""save_rows writes call records with one prepared statement, bypassing peewee's per-row
SQL building: what lands in SQLite must be exactly what Call.create would have written."""
from __future__ import annotations

from agi_server.calls.record import CallRecord, column_values, save_rows
from trunx import config as trunx_config
from trunx import db
from trunx.models import Account, Call


def _record(account: str) -> CallRecord:
    r = CallRecord(did="+19495551234", caller="+12025550100", uniqueid="1700000000.12",
                   channel="Local/+19495551234@trunx-test-caller-00000001;2")
    r.account, r.ivr_id, r.ivr_version = account, "qualify-business", 3
    r.step("welcome", "enter")
    r.step("welcome", "prompt", file="welcome", endpos=8000, barge_in=False)
    r.step("welcome", "digits", digits="1")
    r.step("bye", "hangup")
    r.finish("hangup")
    return r


def _raw(database, call_id: str) -> tuple:
    return database.execute_sql('SELECT * FROM "call" WHERE id = ?', (call_id,)).fetchone()


def test_a_saved_row_is_what_peewee_would_have_written(tmp_path):
    database = db.connect(trunx_config.load(env={}, data_dir=str(tmp_path)))
    account = Account.create(name="rows").id
    row = _record(account).row()
    # either form of a row
    save_rows(Call._meta.database, [row, column_values({**row, "id": "prepared"})])
    Call.create(**{**row, "id": "peewee"})
    fast, prepared, slow = (_raw(database, i) for i in (row["id"], "prepared", "peewee"))
    assert fast is not None and slow is not None and prepared is not None
    assert fast[1:] == slow[1:] == prepared[1:]   # every column, in the database's own form
    assert Call.get_by_id(row["id"]).provider == "asterisk"    # a model default filled in
    assert Call.get_by_id(row["id"]).path[1]["endpos"] == 8000


def test_a_row_written_early_keeps_what_the_bridge_stored(tmp_path):
    db.connect(trunx_config.load(env={}, data_dir=str(tmp_path)))
    record = _record(Account.create(name="rows").id)
    save_rows(Call._meta.database, [{**record.row(), "status": "answered", "ended_at": None}])
    Call.update(ai_result={"status": "ended"}).where(Call.id == record.id).execute()
    save_rows(Call._meta.database, [record.row()])
    row = Call.get_by_id(record.id)
    assert (row.status, row.ai_result, row.outcome) == ("completed", {"status": "ended"},
                                                         "hangup")
    assert row.ended_at is not None and Call.select().count() == 1


def test_a_batch_larger_than_one_statement_is_saved_whole(tmp_path):
    db.connect(trunx_config.load(env={}, data_dir=str(tmp_path)))
    account = Account.create(name="rows").id
    rows = [_record(account).row() for _ in range(450)]      # three statements: 200+200+50
    save_rows(Call._meta.database, rows)
    assert Call.select().count() == 450
    assert {c.id for c in Call.select(Call.id)} == {r["id"] for r in rows}
