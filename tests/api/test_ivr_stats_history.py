"""GET /ivr/:id/stats over 10,000 generated call records (devtools/call_history.py) agrees
with the generator's own tally of what each call did. How fast it answers is a benchmark
row (bench/stats_bench.py, docs/benchmarks.md), not asserted here."""
from __future__ import annotations

import statistics
from collections import Counter
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


def _expect(tally: call_history.Tally, body: dict) -> None:
    """Every figure of a stats answer against the generator's own count."""
    assert body["calls"] == tally.calls
    assert body["outcomes"] == dict(tally.outcomes)
    for node in body["nodes"]:
        name = node["node"]
        assert node["entered"] == tally.entered[name], name
        assert node["visits"] == tally.visits[name], name
        assert node["keys"] == {k: n for (at, k), n in tally.keys.items() if at == name}
        assert node["timeouts"] == tally.timeouts[name], name
        assert node["invalid"] == tally.invalid[name], name
        assert node["invalidKeys"] == {k: n for (at, k), n in tally.invalid_keys.items()
                                       if at == name}
        assert node["hangups"] == tally.hangups[name], name
        exits: dict = {}
        for (at, route, to), n in tally.exits.items():
            if at == name:
                exits.setdefault(to, {})[route] = n
        assert node["exits"] == exits, name
        heard = tally.heard.get(name)
        if heard:   # no prompt here is an asset: the longest heard stands for its length
            longest = max(heard)
            median = statistics.median(e / longest for e in heard)
            assert node["heardMedian"] == round(median, 3), name
        else:
            assert node["heardMedian"] is None, name
    edges: Counter = Counter()
    for (at, route, _), n in tally.exits.items():
        edges[(at, route)] += n
    assert {(e["from"], e["route"]): e["calls"] for e in body["edges"]} == dict(edges)


def test_windows_and_versions_agree_with_the_count(client, tenant, app):
    """Three histories: version 1 from 00:00 and from 00:30, version 2 from 01:00 (one
    call a second, so each ends before the next starts). Every window or version asked
    for is a sum of some of them, counted by the generator, not by trunx."""
    assert client.post("/ivr", json=TREE, headers=tenant.headers).status_code == 201
    v2 = {**TREE["nodes"], "main": {**TREE["nodes"]["main"],
                                    "gather": {"1": "sales", "2": "support", "3": "bye",
                                               "9": "dnc"}}}
    with app.app_context():
        ivr = Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == "menu")
        database = app.extensions["trunx.store"].db
        early = call_history.generate(database, tenant.id, program_of(ivr), 1500,
                                      start=datetime(2026, 1, 1, 0, 0), seed=1)
        late = call_history.generate(database, tenant.id, program_of(ivr), 1500,
                                     start=datetime(2026, 1, 1, 0, 30), seed=2)
    assert client.patch("/ivr/menu", json={"nodes": v2},
                        headers=tenant.headers).status_code == 200
    with app.app_context():
        ivr = Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == "menu")
        second = call_history.generate(database, tenant.id, program_of(ivr, 2), 2000,
                                       start=datetime(2026, 1, 1, 1, 0), seed=3)
    assert second.keys[("main", "3")] > 0 and second.hangups and early.invalid_keys

    def stats(query: str) -> dict:
        r = client.get(f"/ivr/menu/stats?{query}", headers=tenant.headers)
        assert r.status_code == 200, r.json
        return r.json

    t = "2026-01-01T{}:00Z".format
    _expect(early + late + second, stats(""))
    _expect(early + late, stats("version=1"))
    _expect(second, stats("version=2"))
    _expect(early, stats(f"until={t('00:30')}"))
    _expect(late, stats(f"since={t('00:30')}&until={t('01:00')}"))
    _expect(late + second, stats(f"since={t('00:30')}"))
    _expect(late, stats(f"since={t('00:30')}&version=1"))
    assert stats(f"since={t('02:00')}")["calls"] == 0
