"""Per-node IVR stats (trunx.ivr.stats, GET /ivr/:id/stats) over a generated call history.

A SQLite file gets `sizes` histories of inbound calls through one menu (devtools/
call_history.py: random walks through the engine's state machine, one call a second),
beside 20,000 calls of another IVR that the index must skip. Timed: the whole answer of
GET /ivr/:id/stats through the API (Flask test client): the first request (every path read
and parsed), then the median of `repeat` more (the worker has the calls' reductions: the
ids are read, the walks counted), for all of the IVR's calls and for a one-hour window.
Target: 10,000 calls within 100 ms.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime

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


def _timed(client, url: str, headers: dict, repeat: int) -> tuple[float, float, dict]:
    """(the first request's ms, the median of the next `repeat`, the answer)."""
    t0 = time.perf_counter()
    client.get(url, headers=headers)
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url, headers=headers)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.json
    return first, statistics.median(times) * 1000, r.json


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
            first_ms, all_ms, body = _timed(client, f"/ivr/{ivr_id}/stats", headers, repeat)
            assert body["calls"] == size
            _, hour_ms, _ = _timed(client, f"/ivr/{ivr_id}/stats?since=2026-01-01T00:00:00Z"
                                           "&until=2026-01-01T01:00:00Z", headers, repeat)
            log(f"[stats] {size:,} calls: first {first_ms:.1f} ms, then {all_ms:.1f} ms, "
                f"one hour {hour_ms:.1f} ms")
            out["rows"].append({"calls": size, "first_ms": first_ms, "all_ms": all_ms,
                                "hour_ms": hour_ms})
        store.close()
    return out


if __name__ == "__main__":    # python -m bench.stats_bench: this section alone
    print(run())
