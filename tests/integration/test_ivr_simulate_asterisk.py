"""POST /ivr/:id/simulate answers the path a real call takes: six scripted callers through
the real Asterisk 22 (keys sent by SendDTMF on the Local channel, timeouts by
waiting, a wrong key, a hang-up) walk one tree at once, and each call record's path is the
simulation's for the same inputs, step for step (node, event, digits) and outcome. The
stats the engine's records make (GET /ivr/:id/stats) count those walks."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from admin_api import create_app
from devtools.stack.ami import originate_local
from tests.engine_support import make_config, running_engine, seed_account
from trunx import accounts, db
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

DID = "+19495550188"
CALLER = "+12025550178"
TREE = {"nodes": {
    # beep is short (0.25 s): the waits below leave over a second either side of each
    # 3 s gather timeout
    "menu": {"audio": "beep", "gather": {"1": "sales", "2": "support", "9": "dnc"},
             "timeout": 3, "timeout_node": "menu", "max_tries": 2},
    "sales": {"audio": "beep", "gather": {"1": "bye", "2": "menu"}, "timeout": 3,
              "invalid_node": "bye"},
    "support": {"action": "hangup", "audio": "beep"},
    "bye": {"action": "hangup"},
    "dnc": {"action": "suppress"},
}}
# (the caller's dialplan steps, the same caller as simulate inputs)
SCRIPTS = [
    ("w1-d1-w1.5-d1", ["1", "1"]),
    ("w5-d2", ["timeout", "2"]),                   # menu times out, replays, then 2
    ("w1-d7-w1.5-d1-w1.5-d5", ["7", "1", "5"]),    # a wrong key; sales' invalid -> bye
    ("w1-d1-w1.5-h", ["1", "hangup"]),             # hangs up while sales waits
    ("w9", ["timeout", "timeout"]),                # menu's second timeout: max-tries
    ("w1-d9", ["9"]),                              # onto the do-not-call list
]


def steps(path: list[dict]) -> list[tuple]:
    return [(p["node"], p["event"], p.get("digits")) for p in path]


async def final_row(call, timeout: float = 60.0) -> Call:
    async with asyncio.timeout(timeout):
        while (row := Call.get_or_none(Call.uniqueid == call.callee_id,
                                           Call.ended_at.is_null(False))) is None:
            await asyncio.sleep(0.1)
    return row


async def test_simulate_agrees_with_real_calls(tmp_path, redis_server, redis, pbx, pbx_ami):
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      sounds_dir=str(pbx.sounds_dir_host),
                      asterisk_sounds_dir=pbx.sounds_dir_in_root)
    database = db.connect(cfg)
    account, _ = seed_account(cfg, redis, tree=TREE, did=DID, ivr_id="sim")
    key = accounts.create_key(account)
    app = create_app(cfg, redis=redis)
    client = app.test_client()
    simulated = []
    for _, inputs in SCRIPTS:
        r = client.post("/ivr/sim/simulate", json={"inputs": inputs},
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.json
        simulated.append(r.json)
    try:
        async with running_engine(cfg) as engine:
            calls = [await originate_local(pbx_ami, DID, script, caller_id=f"T <{CALLER}>",
                                           variables={"MAXWAIT": "20"})
                     for script, _ in SCRIPTS]
            rows = await asyncio.gather(*(final_row(c) for c in calls))
            assert engine.server.stats["errors"] == 0
        for (script, inputs), sim, row in zip(SCRIPTS, simulated, rows, strict=True):
            assert steps(row.path) == steps(sim["path"]), (script, inputs)
            assert (row.outcome, row.end_reason) == (sim["outcome"], sim["reason"]), script
        assert {s["outcome"] for s in simulated} == {
            "hangup", "caller-hangup", "max-tries", "suppressed"}
        assert any(p["event"] == "invalid" for s in simulated for p in s["path"])
        assert any(p["event"] == "timeout" for s in simulated for p in s["path"])
        _stats_count_the_walks(client.get("/ivr/sim/stats", headers={
            "Authorization": f"Bearer {key}"}).json, simulated)
    finally:
        app.extensions["trunx.store"].close()
        database.close()


def _stats_count_the_walks(stats: dict, simulated: list[dict]) -> None:
    """The visit rows the engine wrote with each record, summed by the API, against a count
    of the same walks made here from the simulation's visits."""
    assert stats["calls"] == len(simulated)
    assert stats["outcomes"] == dict(Counter(s["outcome"] for s in simulated))
    hung_up = Counter(s["nodes"][-1]["node"] for s in simulated
                      if s["outcome"] == "caller-hangup")
    for node in stats["nodes"]:
        name = node["node"]
        visits = [v for s in simulated for v in s["nodes"] if v["node"] == name]
        results = [v.get("result") for v in visits]
        assert node["visits"] == len(visits), name
        assert node["entered"] == sum(any(v["node"] == name for v in s["nodes"])
                                      for s in simulated), name
        assert node["keys"] == dict(Counter(v["digits"] for v in visits
                                            if v.get("result") == "digits")), name
        assert (node["timeouts"], node["invalid"]) == (results.count("timeout"),
                                                       results.count("invalid")), name
        assert node["hangups"] == hung_up[name], name
    menu = next(n for n in stats["nodes"] if n["node"] == "menu")
    assert 0 < menu["heardMedian"] <= 1      # Asterisk's own endpos, of the sound heard
