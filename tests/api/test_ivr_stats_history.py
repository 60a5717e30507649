"""GET /ivr/:id/stats over 10,000 generated call records (devtools/call_history.py) agrees
with the generator's own tally of what each call did. How fast it answers is a benchmark
row (bench/stats_bench.py, docs/benchmarks.md), not asserted here."""
from __future__ import annotations

from datetime import datetime

from admin_api.ivr_tools import program_of
from devtools import call_history
from tests.api.conftest import SEED_TREE
from trunx.models import Ivr

TREE = {"id": "menu", "nodes": {
    "main": {"audio": "main", "gather": {"1": "sales", "2": "support", "9": "dnc"},
             "timeout_node": "main", "invalid_node": "main", "max_tries": 4},
    "sales": {"audio": "sales", "gather": {"1": "sales_agent", "2": "bye"}},
    "support": {"audio": "support", "gather": {"1": "tech", "2": "main"},
                "invalid_node": "bye"},
    "sales_agent": {"action": "transfer", "to": "+19495550101"},
    "tech": {"action": "transfer", "to": "+19495550102"},
    "bye": {"action": "hangup", "audio": "bye"},
    "dnc": {"action": "suppress"},
}}


def test_stats_agree_with_a_count_over_10000_calls(client, tenant, app):
    assert client.post("/ivr", json=TREE, headers=tenant.headers).status_code == 201
    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    with app.app_context():
        ivr = Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == "menu")
        program = program_of(ivr)
        database = app.extensions["trunx.store"].db
        tally = call_history.generate(database, tenant.id, program, 10_000,
                                      start=datetime(2026, 1, 1))
        # another IVR's calls in the same table must not be counted
        call_history.generate(database, tenant.id,
                              program_of(Ivr.get(Ivr.ivr_id == "qualify-business")), 500,
                              start=datetime(2026, 1, 1))
    r = client.get("/ivr/menu/stats", headers=tenant.headers)
    assert r.status_code == 200
    body = r.json
    assert body["calls"] == tally.calls == 10_000
    assert body["outcomes"] == dict(tally.outcomes)
    assert set(tally.outcomes) >= {"transferred", "hangup", "suppressed", "caller-hangup"}
    for node in body["nodes"]:
        name = node["node"]
        assert node["entered"] == tally.entered[name], name
        assert node["visits"] == tally.visits[name], name
        assert node["keys"] == {k: n for (where, k), n in tally.keys.items() if where == name}
        assert node["timeouts"] == tally.timeouts[name], name
        assert node["invalid"] == tally.invalid[name], name
        assert node["hangups"] == tally.hangups[name], name
        if name in ("main", "sales", "support"):
            assert 0.3 < node["heardMedian"] < 0.7     # uniform shares: about a half
    assert {f["node"]: f["calls"] for f in body["funnel"]} == {
        name: tally.entered[name]
        for name in ("main", "sales_agent", "tech", "bye", "dnc")}
    # a window: the first hour of the history, one call a second
    hour = client.get("/ivr/menu/stats?since=2026-01-01T00:00:00Z&until=2026-01-01T01:00:00Z",
                      headers=tenant.headers).json
    assert hour["calls"] == 3600
    assert client.get("/ivr/menu/stats?version=2", headers=tenant.headers).status_code == 404
    assert client.get("/ivr/menu/stats?version=1", headers=tenant.headers).json["calls"] == 10_000
