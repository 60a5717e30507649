"""trunx.ivr.stats on hand-written paths, through the rows trunx.ivr.visits writes for them:
each call's walk counted once per call, shares of a prompt heard, hang-ups in the last
node, and walks no machine makes (two keys in one visit, a prompt of a node not entered)
still counted step for step. Also: calls recorded before the table existed are filled in
when it is created."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from trunx import config as trunx_config
from trunx import db, migrations
from trunx.ivr import stats, visits
from trunx.ivr.program import compile_program
from trunx.ivr.tree import validate
from trunx.models import Account, Call, CallNodeVisit, new_uuid

TREE = {"nodes": {"menu": {"audio": "m", "gather": {"1": "end", "2": "menu"}},
                  "end": {"action": "hangup"}}}
PROGRAM = compile_program(validate(TREE), lambda ref: ref, gather_timeout=5,
                          gather_max_tries=3, account="a", ivr_id="i", version=1)
START = datetime(2026, 3, 1, 12, 0)


def step(node, event, **data):
    return {"node": node, "event": event, "t": 0.1, **data}


REPLAY_THEN_1 = [step("menu", "enter"), step("menu", "prompt", file="m", endpos=8000),
                 step("menu", "digits", digits="2"), step("menu", "enter"),
                 step("menu", "prompt", file="m", endpos=16000),
                 step("menu", "timeout"), step("menu", "enter"),
                 step("menu", "prompt", file="m", endpos=4000),
                 step("menu", "digits", digits="1"), step("end", "enter"),
                 step("end", "hangup")]
HUNG_UP = [step("menu", "enter"), step("menu", "prompt", file="m", endpos=2000)]


@pytest.fixture
def database(tmp_path):
    return db.connect(trunx_config.load(env={}, data_dir=str(tmp_path)))


def record(database, account, rows, version=1, started=START):
    """Call rows and their visit rows, as the engine's record writes them."""
    calls = [(new_uuid(), account, "i", version, started, path, outcome)
             for path, outcome in rows]
    with database.atomic():
        for call_id, _, ivr_id, ver, at, path, outcome in calls:
            Call.create(id=call_id, account=account, direction="inbound",
                        status="completed", ivr_id=ivr_id, ivr_version=ver, created_at=at,
                        path=json.loads(path) if isinstance(path, str) and path else path,
                        outcome=outcome)
        visits.replace(database, calls)
    return [c[0] for c in calls]


def test_walks_edges_shares_and_hangups(database):
    account = Account.create(name="s").id
    record(database, account, [(json.dumps(REPLAY_THEN_1), "hangup")] * 2
           + [(HUNG_UP, "caller-hangup"), ("", None), ([], None)])
    out = stats.compute(database, account, "i", PROGRAM, lambda file: 2.0)  # 16000 samples
    menu, end = out["nodes"]
    assert out["calls"] == 3 and out["outcomes"] == {"hangup": 2, "caller-hangup": 1}
    assert (menu["entered"], menu["visits"], menu["timeouts"], menu["hangups"]) == (3, 7, 2, 1)
    assert menu["keys"] == {"1": 2, "2": 2}
    assert menu["exits"] == {"menu": {"2": 2, "timeout": 2}, "end": {"1": 2}}
    # shares heard: 0.5, 1, 0.25 twice each, and 0.125: the median of seven is 0.5
    assert menu["heardMedian"] == 0.5
    assert (end["entered"], end["visits"]) == (2, 2)
    assert stats.edge_counts(out) == {("menu", "1"): 2, ("menu", "2"): 2,
                                      ("menu", "timeout"): 2}
    assert out["funnel"] == [{"node": "menu", "calls": 3, "share": 1.0},
                             {"node": "end", "action": "hangup", "calls": 2, "share": 0.667}]


def test_a_sound_with_no_stored_length_is_measured_by_the_longest_heard(database):
    account = Account.create(name="s").id
    record(database, account, [(REPLAY_THEN_1, "hangup")])
    (menu, _) = stats.compute(database, account, "i", PROGRAM)["nodes"]
    assert menu["heardMedian"] == 0.5          # 8000 of the longest, 16000


def test_an_even_count_of_prompts_takes_the_mean_of_the_middle_two(database):
    account = Account.create(name="s").id
    heard = [1000, 3000, 5000, 20000]     # of 8000 samples: 0.125, 0.375, 0.625, 1 (capped)
    record(database, account, [([step("menu", "enter"),
                                 step("menu", "prompt", file="m", endpos=e)], "hangup")
                                for e in heard])
    (menu, _) = stats.compute(database, account, "i", PROGRAM, lambda file: 1.0)["nodes"]
    assert menu["heardMedian"] == 0.5


def test_a_node_that_played_two_files_sorts_their_shares_together(database):
    account = Account.create(name="s").id
    # m is 1 s (8000 samples), n has no stored length: the longest heard, 4000, stands for it
    rows = [([step("menu", "enter"), step("menu", "prompt", file=f, endpos=e)], "hangup")
            for f, e in (("m", 800), ("m", 7200), ("n", 1000), ("n", 4000), ("n", 2000))]
    record(database, account, rows)
    seconds = {"m": 1.0}.get
    (menu, _) = stats.compute(database, account, "i", PROGRAM, seconds)["nodes"]
    assert menu["heardMedian"] == 0.5     # 0.1, 0.25, 0.5, 0.9, 1.0


def test_walks_no_machine_makes_are_still_counted_step_for_step(database):
    account = Account.create(name="s").id
    odd = [step("menu", "enter"), step("menu", "invalid", digits="7"),
           step("menu", "digits", digits="2"),          # a second route in one visit
           step("end", "prompt", file="e", endpos=100),  # a prompt of a node not entered
           step("menu", "enter")]
    record(database, account, [(odd, "caller-hangup"), ([step("menu", "loop-limit")], None)])
    rows = CallNodeVisit.select().order_by(CallNodeVisit.call, CallNodeVisit.seq)
    assert len(rows) == 5
    out = stats.compute(database, account, "i", PROGRAM)
    menu, end = out["nodes"]
    assert out["calls"] == 2 and out["outcomes"] == {"caller-hangup": 1, "completed": 1}
    assert (menu["entered"], menu["visits"], menu["invalid"], menu["keys"]) == (1, 2, 1,
                                                                                {"2": 1})
    assert menu["exits"] == {"menu": {"2": 1}} and menu["hangups"] == 1
    assert (end["entered"], end["heardMedian"]) == (0, 1.0)


def test_since_until_and_version_select_the_calls(database):
    account = Account.create(name="s").id
    one = [step("menu", "enter"), step("menu", "digits", digits="1"), step("end", "enter")]
    record(database, account, [(one, "hangup")] * 2, started=datetime(2026, 3, 1, 11))
    record(database, account, [(one, "hangup")] * 3, version=2, started=START)

    def calls(**window):
        return stats.compute(database, account, "i", PROGRAM, **window)["calls"]

    assert calls() == 5 and calls(version=2) == 3 and calls(version=1) == 2
    assert calls(since=START) == 3 and calls(until=START) == 2
    assert calls(since=datetime(2026, 3, 1, 11), until=datetime(2026, 3, 1, 11, 0, 1)) == 2
    assert stats.compute(database, "acc_other", "i", PROGRAM)["calls"] == 0


def test_calls_recorded_before_the_table_existed_are_filled_in_when_it_is_made(tmp_path):
    config = trunx_config.load(env={}, data_dir=str(tmp_path))
    database = db.connect(config)
    account = Account.create(name="old").id
    Call.insert_many([dict(id=new_uuid(), account=account, direction="inbound",
                           status="completed", ivr_id="i", ivr_version=1, path=path,
                           outcome=outcome, created_at=START)
                      for path, outcome in [(REPLAY_THEN_1, "hangup"), (HUNG_UP, None),
                                            (None, "fallback")]]).execute()
    # as a database at schema version 2, from before the table (migration 3 makes it)
    CallNodeVisit.drop_table()
    migrations.SchemaMigration.delete().where(migrations.SchemaMigration.version >= 3).execute()
    db.connect(config)
    assert migrations.current_version(database) == migrations.HEAD
    out = stats.compute(database, account, "i", PROGRAM)
    assert out["calls"] == 2 and out["nodes"][0]["visits"] == 4
    db.connect(config)                  # made once: a second start adds nothing
    assert CallNodeVisit.select().count() == len(visits.visit_rows(
        visits.reduce_path(REPLAY_THEN_1, "hangup"))) + 1


def test_sqlite_reads_only_the_index_and_only_the_window(database):
    """The plans the speed rests on (trunx.ivr.stats.groups_query): all calls stream
    through the index in group order, unsorted; a window reads its range and sorts it;
    neither reads a table row."""
    def plan(since=None, until=None, version=None) -> str:
        sql, params = stats.groups_query("acc", "i", since, until, version).sql()
        return " | ".join(row[3] for row in
                          database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))

    for everything in (plan(), plan(version=2)):
        assert "COVERING INDEX" in everything and "TEMP B-TREE" not in everything
    for window in (plan(since=START), plan(START, datetime(2026, 3, 2), 1)):
        assert "COVERING INDEX" in window and "started>?" in window
