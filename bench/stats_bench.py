"""Per-node IVR stats (trunx.ivr.stats, GET /ivr/:id/stats) over a generated call history.

A SQLite file gets `sizes` histories of inbound calls through one menu (devtools/
call_history.py: random walks through the engine's state machine, one call a second,
written as the engine writes its records, visit rows included), beside 20,000 calls of
another IVR that the indexes must skip. Timed: the whole answer of GET /ivr/:id/stats
through the API (Flask test client): the first stats request after the history was
written (after one GET /ivr/:id, so the worker's own first-request set-up is not counted),
then the median of `repeat` more, for all of the IVR's calls and for a one-hour window.

Baseline, in the same run and timed the same way: a bare Flask app whose route answers
one indexed COUNT of the IVR's calls in the window (the Call table's (account, ivr_id,
created_at) index, a plain sqlite3 connection to the same file): the least any answer
about those calls can cost. Target: 10,000 calls within 100 ms.
"""
from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from datetime import datetime

from flask import Flask, request

from admin_api import create_app
from devtools import call_history
from devtools.stack import RedisServer
from trunx import accounts
from trunx import config as trunx_config
from trunx.ivr import store as ivr_store
from trunx.ivr.program import decode

TREE = {"nodes": {
    "main": {"audio": "main", "gather": {"1": "sales", "2": "support", "9": "dnc"},
             "timeout_node": "main", "invalid_node": "main", "max_tries": 4},
    "sales": {"audio": "sales", "gather": {"1": "sales_agent", "2": "bye"}},
    "support": {"audio": "support", "gather": {"1": "tech", "2": "main"}},
    "sales_agent": {"action": "transfer", "to": "+19495550101"},
    "tech": {"action": "transfer", "to": "+19495550102"},
    "bye": {"action": "hangup", "audio": "bye"},
    "dnc": {"action": "suppress"},
}}


def _timed(client, url: str, headers: dict, repeat: int) -> tuple[dict, dict]:
    """({first, then, first_cpu, then_cpu} in ms, the answer): the first request and the
    median of the next `repeat`, in wall time and in this process's CPU time (the request
    runs in it; CPU time is much less affected by other load on the machine)."""
    walls, cpus = [], []
    for _ in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        r = client.get(url, headers=headers)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
        assert r.status_code == 200, r.json
    return {"first": walls[0], "then": statistics.median(walls[1:]), "first_cpu": cpus[0],
            "then_cpu": statistics.median(cpus[1:])}, r.json


def bare_app(db_path: str, account_id: str) -> Flask:
    """The baseline: the IVR's calls in the window counted through the Call index."""
    app = Flask(__name__)
    conn = sqlite3.connect(db_path, check_same_thread=False)

    @app.get("/ivr/<ivr_id>/stats")
    def count(ivr_id: str):
        sql = 'SELECT COUNT(*) FROM "call" WHERE account_id = ? AND ivr_id = ?'
        params = [account_id, ivr_id]
        for name, op in (("since", ">="), ("until", "<")):
            if request.args.get(name):
                sql += f" AND created_at {op} ?"
                params.append(datetime.fromisoformat(request.args[name]).strftime(
                    "%Y-%m-%d %H:%M:%S"))
        return {"calls": conn.execute(sql, params).fetchone()[0]}

    return app


HOUR = "?since=2026-01-01T00:00:00Z&until=2026-01-01T01:00:00Z"


def run(sizes=(10_000, 100_000), repeat: int = 7, log=print) -> dict:
    out = {"rows": [], "repeat": repeat, "other_calls": 20_000}
    with tempfile.TemporaryDirectory(prefix="trunx-bench-stats-") as tmp, \
            RedisServer(tmp) as redis_server:
        config = trunx_config.load(env={}, data_dir=tmp, redis_url=redis_server.url)
        app = create_app(config)
        store = app.extensions["trunx.store"]
        client = app.test_client()
        with app.app_context():
            account = accounts.create_account("bench")
            headers = {"Authorization": f"Bearer {accounts.create_key(account)}"}
            _, other, _ = ivr_store.save(store, account.id, "other", TREE, config, create=True)
            call_history.generate(store.db, account.id, decode(other.compiled),
                                  out["other_calls"], start=datetime(2026, 1, 1), seed=1)
        for size in sizes:
            ivr_id = f"menu{size}"
            with app.app_context():
                _, version, _ = ivr_store.save(store, account.id, ivr_id, TREE, config,
                                               create=True)
                t0 = time.perf_counter()
                call_history.generate(store.db, account.id, decode(version.compiled), size,
                                      start=datetime(2026, 1, 1))
                log(f"[stats] {size:,} calls generated in {time.perf_counter() - t0:.1f} s")
            # the worker's own first request (its lazy set-up) is not the stats' cost
            assert client.get(f"/ivr/{ivr_id}", headers=headers).status_code == 200
            every, body = _timed(client, f"/ivr/{ivr_id}/stats", headers, repeat)
            assert body["calls"] == size
            hour, hour_body = _timed(client, f"/ivr/{ivr_id}/stats{HOUR}", headers, repeat)
            bare = bare_app(config.db_url[len("sqlite:///"):], account.id).test_client()
            bare.get("/ivr/other/stats")
            base, counted = _timed(bare, f"/ivr/{ivr_id}/stats", {}, repeat)
            base_hour, counted_hour = _timed(bare, f"/ivr/{ivr_id}/stats{HOUR}", {}, repeat)
            assert (counted["calls"], counted_hour["calls"]) == (size, hour_body["calls"])
            log(f"[stats] {size:,} calls: first {every['first']:.1f} ms "
                f"(CPU {every['first_cpu']:.1f}), then {every['then']:.1f} ms "
                f"(CPU {every['then_cpu']:.1f}), one hour {hour['then']:.1f} ms; bare COUNT: "
                f"first {base['first']:.1f} ms, then {base['then']:.1f} ms, one hour "
                f"{base_hour['then']:.1f} ms")
            out["rows"].append({"calls": size, "all": every, "hour": hour, "base_all": base,
                                "base_hour": base_hour})
        store.close()
    return out


if __name__ == "__main__":    # python -m bench.stats_bench: this section alone
    print(run())
