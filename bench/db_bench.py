"""The admin API on SQLite beside the same API on PostgreSQL (issue 13): `GET /ivr/:id`,
`POST /ivr` (validate, write, publish under the writer lock) and `POST /api/voice` (a call
row and its queue entry), each with wrk against gunicorn with the shipped settings.

PostgreSQL is a throw-away cluster on this machine (devtools/stack/postgres.py: loopback
TCP, fsync and full-page writes off, as the tests run it); SQLite keeps its shipped
settings (WAL, synchronous=normal). Neither is tuned beyond that, so the rows compare
what an operator gets by switching the URL on one box, not two tuned servers. A second of
reads first warms both (each API thread's first request opens its connection)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import redis

from bench.api_bench import TREE, Gunicorn, wrk
from devtools.stack import RedisServer
from devtools.stack.postgres import PostgresServer
from trunx import accounts, db, models
from trunx import config as trunx_config
from trunx.ivr import store as ivr_store
from trunx.models import Call, Did, Ivr
from trunx.store import Store

FROM = "+14155550100"
REQUESTS = (("GET /ivr/:id", "get.lua"), ("POST /ivr", "post.lua"),
            ("POST /api/voice", "voice.lua"))


def _seed(cfg, redis_url: str) -> str:
    """An account with the IVR the reads fetch and the DID calls are placed from; its key."""
    database = db.connect(cfg)
    account = accounts.create_account("bench")
    key = accounts.create_key(account, "bench")
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ivr_store.save(Store(database, r), account.id, "bench-read", TREE, cfg, create=True)
    Did.create(number=FROM, account=account)
    r.close()
    db.close_all(database)
    return key


def _one(name: str, url: str, tmp: str, rs: RedisServer, seconds: float, log) -> dict:
    data = os.path.join(tmp, f"data-{name}")
    cfg = trunx_config.load(env={}, data_dir=data, redis_url=rs.url, database_url=url)
    key = _seed(cfg, rs.url)
    env = {"TRUNX_DATA_DIR": data, "TRUNX_REDIS_URL": rs.url, "TRUNX_DATABASE_URL": url,
           "TRUNX_API_RATE_LIMIT": str(10 ** 9), "TRUNX_MAX_QUEUED_CALLS": str(10 ** 9)}
    server = Gunicorn("admin_api.wsgi:app", env, os.path.join(tmp, f"api-{name}.log"))
    out: dict = {}
    try:
        auth = {"Authorization": f"Bearer {key}"}
        server.wait("/ivr/bench-read", auth)
        wrk_env = {"BENCH_KEY": key, "BENCH_IVR": "bench-read", "BENCH_FROM": FROM,
                   "BENCH_TREE": __import__("json").dumps(TREE["nodes"]), "BENCH_RUN": name}
        # every gunicorn thread opens its connection at its first request (on PostgreSQL a
        # server process each, ~64 in all): done before the measured runs, on both
        wrk(server.port, "get.lua", 1.0, wrk_env)
        for label, script in REQUESTS:
            res = wrk(server.port, script, seconds, wrk_env)
            log(f"  db {name:10} {label:16} {res['requests_per_s']:7.0f} req/s "
                f"p50 {res['p50_ms']:.1f} p99 {res['p99_ms']:.1f} ms "
                f"2xx={res['s2']}/{res['requests']}")
            out[label] = res
    finally:
        server.close()
    # what the write runs acknowledged is stored
    db.connect(cfg)
    out["ivrs_stored"] = Ivr.select().where(Ivr.ivr_id.startswith("w")).count()
    out["calls_stored"] = Call.select().count()
    db.close_all(models.proxy.obj)
    models.proxy.initialize(None)
    return out


def run(seconds: float = 3.0, log=print) -> dict:
    results: dict = {"seconds": seconds, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="trunx-bench-db-") as tmp, \
            RedisServer(tmp) as rs, PostgresServer() as pg:
        for name, url in (("sqlite", ""), ("postgresql", pg.create_database("bench"))):
            rs_client = redis.Redis.from_url(rs.url)
            rs_client.flushall()
            rs_client.close()
            results["backends"][name] = _one(name, url, tmp, rs, seconds, log)
        results["postgresql_version"] = Path(pg.workdir, "data", "PG_VERSION").read_text().strip()
    return results
