"""A campaign's burst on the API: `calls` POST /api/voice at once, under the API's shipped
gunicorn settings, from `clients` keep-alive connections (threads of this process).

Reported: how long the whole burst took to be accepted, each request's latency (p50, p99),
the API's CPU time per call (its gunicorn master and workers, during the burst),
the answers that were not 201, and what was queued: the originate stream's length and the
distinct call ids, against the requests sent (none lost, none twice). Placing the calls at
the paced rate is the engine's dialer's work and is not measured here (bench/report.py says
which tests cover it).
"""
from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time

import redis

from bench.api_bench import Gunicorn
from bench.common import percentile
from devtools.stack import RedisServer
from trunx import accounts, db, redis_schema
from trunx import config as trunx_config

FROM, TO = "+14155559876", "+14155551234"


def run(calls: int = 2000, clients: int = 50, log=print) -> dict:
    from trunx.models import Call, Did

    with tempfile.TemporaryDirectory(prefix="trunx-bench-campaign-") as tmp, \
            RedisServer(tmp) as rs:
        data = os.path.join(tmp, "data")
        cfg = trunx_config.load(env={}, data_dir=data, redis_url=rs.url)
        database = db.connect(cfg)
        account = accounts.create_account("campaign")
        key = accounts.create_key(account, "campaign")
        Did.create(number=FROM, account=account)
        database.close()
        api = Gunicorn("admin_api.wsgi:app", {"TRUNX_DATA_DIR": data, "TRUNX_REDIS_URL": rs.url,
                                              "TRUNX_API_RATE_LIMIT": str(10 ** 9),
                                              # a campaign's operator raises the queue's
                                              # cap (1,000 by default) for its burst
                                              "TRUNX_MAX_QUEUED_CALLS": str(10 ** 9)},
                       os.path.join(tmp, "api.log"))
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps({"from": FROM, "to": TO}).encode()
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        ids: list[str] = []
        lock = threading.Lock()
        todo = iter(range(calls))
        start = threading.Barrier(clients + 1)

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
            start.wait()
            while True:
                with lock:
                    if next(todo, None) is None:
                        break
                t0 = time.perf_counter()
                conn.request("POST", "/api/voice", body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took * 1000)
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if resp.status == 201:
                        ids.append(json.loads(payload)["id"])
            conn.close()

        try:
            api.wait("/api/voice?limit=1", {"Authorization": f"Bearer {key}"})
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            cpu0 = api.cpu_seconds()
            start.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            burst = time.perf_counter() - t0
            cpu_ms = (api.cpu_seconds() - cpu0) * 1000 / calls
        finally:
            api.close()
        r = redis.Redis.from_url(rs.url, decode_responses=True)
        queued = r.xlen(redis_schema.ORIGINATE_STREAM)
        r.close()
        database = db.connect(cfg)
        rows = Call.select().where(Call.direction == "outbound").count()
        database.close()
    out = {"calls": calls, "clients": clients, "burst_s": burst, "statuses": statuses,
           "accepted": statuses.get(201, 0), "distinct_ids": len(set(ids)),
           "queued": queued, "rows": rows, "api_cpu_ms": cpu_ms,
           "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
    log(f"  campaign {out['accepted']}/{calls} accepted in {burst:.2f} s, p99 "
        f"{out['p99_ms']:.1f} ms, queued {queued}, distinct ids {out['distinct_ids']}, "
        f"API CPU {cpu_ms:.2f} ms a call")
    return out
