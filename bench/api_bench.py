"""The admin API under gunicorn against a bare Flask app (issue 6, part 4).

Both apps run under the API's shipped gunicorn settings (admin_api/gunicorn_conf.py:
WORKERS gthread workers with THREADS threads each, so all 50 writers are in flight at once)
and are loaded by wrk with the same connections. The bare app (bench.bare_api) answers
with the JSON trunx's API returned for the same IVR, from memory. GET /ivr/:id reads one
IVR with its DIDs and warnings; POST /ivr creates a new IVR per request (validate, SQLite,
publish to Redis). "database is locked" is counted in response bodies and in gunicorn's
error log.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from admin_api import gunicorn_conf
from bench import profiling
from bench.common import REPO
from devtools.stack import RedisServer, free_port
from trunx import accounts, db
from trunx import config as trunx_config
from trunx.ivr import store as ivr_store
from trunx.store import Store

WORKERS, THREADS = gunicorn_conf.workers, gunicorn_conf.threads
CONNECTIONS, WRK_THREADS = 50, 2
WRK_DIR = Path(__file__).parent / "wrk"
TREE = {"nodes": {
    "welcome": {"audio": "welcome.wav", "gather": {"1": "has_business", "9": "dnc"},
                "timeout_node": "welcome"},
    "has_business": {"audio": "business_check.wav",
                     "gather": {"1": "transfer_ai", "2": "unqualified"}},
    "transfer_ai": {"action": "transfer"},
    "unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
    "dnc": {"action": "suppress"},
}}


class Gunicorn:
    def __init__(self, app: str, env: dict, log_path: str):
        self.port = free_port()
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:admin_api.gunicorn_conf",
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "--error-logfile", log_path, app],
            cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def wait(self, path: str, headers: dict, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(self.log_path).read_text()[-2000:]}")
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                             headers=headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                raise RuntimeError(f"{path} answered {exc.code}: {exc.read()[:500]!r}\n"
                                   f"{Path(self.log_path).read_text()[-3000:]}") from exc
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the master and its workers used so far: a request's CPU
        cost, unlike its rate, barely moves with what else the machine runs."""
        pids, total = [self.proc.pid], 0.0
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def locked_in_log(self) -> int:
        return Path(self.log_path).read_text(errors="replace").count("database is locked")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(port: int, script: str, seconds: float, env: dict, server=None) -> dict:
    cpu = server.cpu_seconds() if server is not None else None
    out = subprocess.run(
        ["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s",
         "--latency", "-s", str(WRK_DIR / script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
        env={**os.environ, "BENCH_WRK_DIR": str(WRK_DIR), **env}).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH-JSON "))
    r = json.loads(line[len("BENCH-JSON "):])
    r["requests_per_s"] = r["requests"] / (r["duration_us"] / 1e6)
    r["p99_ms"], r["p50_ms"] = r["p99_us"] / 1000, r["p50_us"] / 1000
    if cpu is not None:     # the server's CPU per request it answered in the run
        r["cpu_ms"] = (server.cpu_seconds() - cpu) * 1000 / max(r["requests"], 1)
    return r


def _profile(cfg, r, key: str) -> dict:
    """cProfile of one GET and one POST in this process, through Flask's test client."""
    from admin_api import create_app

    # the limit as the served API has it (too high to refuse any): at the default 100 a
    # second the POSTs below were profiled as 429 answers, not as saves
    cfg = dataclasses.replace(cfg, api_rate_limit=10 ** 9)
    client = create_app(cfg, redis=r).test_client()
    auth = {"Authorization": f"Bearer {key}"}
    for _ in range(20):
        client.get("/ivr/bench-read", headers=auth)
    n = iter(range(10**6))
    return {
        "get": profiling.cprofile(lambda: client.get("/ivr/bench-read", headers=auth), 200),
        "post": profiling.cprofile(lambda: client.post(
            "/ivr", headers=auth, json={"id": f"prof-{next(n)}", **TREE}), 50),
    }


def run(seconds: float = 5.0, repeat: int = 2, log=print) -> dict:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="trunx-bench-api-") as tmp, \
            RedisServer(tmp) as rs:
        data = os.path.join(tmp, "data")
        cfg = trunx_config.load(env={}, data_dir=data, redis_url=rs.url)
        database = db.connect(cfg)
        account = accounts.create_account("bench")
        key = accounts.create_key(account, "bench")
        r = redis.Redis.from_url(rs.url, decode_responses=True)
        ivr_store.save(Store(database, r), account.id, "bench-read", TREE, cfg, create=True)
        profile = _profile(cfg, r, key)
        r.close()
        database.close()
        auth = {"Authorization": f"Bearer {key}"}
        # one account at full speed: the per-account rate limit is counted (in leases of
        # the shared Redis count, admin_api/rate_limit.py) but set too high to refuse any
        real = Gunicorn("admin_api.wsgi:app", {"TRUNX_DATA_DIR": data, "TRUNX_REDIS_URL": rs.url,
                                               "TRUNX_API_RATE_LIMIT": str(10 ** 9)},
                        os.path.join(tmp, "api.log"))
        body_path = os.path.join(tmp, "body.json")
        try:
            body = real.wait("/ivr/bench-read", auth)
            Path(body_path).write_bytes(body)
            bare = Gunicorn("bench.bare_api:app", {"BENCH_BARE_BODY": body_path},
                            os.path.join(tmp, "bare.log"))
            try:
                bare.wait("/ivr/bench-read", {})
                env = {"BENCH_KEY": key, "BENCH_IVR": "bench-read",
                       "BENCH_TREE": json.dumps(TREE["nodes"])}
                out: dict = {"get": {"api": [], "bare": []}, "post": {"api": [], "bare": []},
                             "workers": WORKERS, "threads": THREADS,
                             "connections": CONNECTIONS, "body_bytes": len(body)}
                for attempt in range(repeat):
                    for name, server in ((("api", real), ("bare", bare)) if attempt % 2 == 0
                                         else (("bare", bare), ("api", real))):
                        res = wrk(server.port, "get.lua", seconds, env, server)
                        log(f"  api GET  {name:4} {res['requests_per_s']:7.0f} req/s "
                            f"p99 {res['p99_ms']:.1f} ms 2xx={res['s2']}/{res['requests']} "
                            f"CPU {res['cpu_ms']:.3f} ms/req")
                        out["get"][name].append(res)
                for name, server in (("api", real), ("bare", bare)):
                    res = wrk(server.port, "post.lua", seconds, {**env, "BENCH_RUN": name},
                              server)
                    log(f"  api POST {name:4} {res['requests_per_s']:7.0f} req/s "
                        f"p99 {res['p99_ms']:.1f} ms 2xx={res['s2']}/{res['requests']} "
                        f"locked={res['locked']} CPU {res['cpu_ms']:.3f} ms/req")
                    out["post"][name].append(res)
                out["locked_in_log"] = real.locked_in_log()
                out["profile"] = profile
            finally:
                bare.close()
        finally:
            real.close()
        # every write the API acknowledged is in SQLite
        database = db.connect(cfg)
        from trunx.models import Ivr
        out["ivrs_stored"] = Ivr.select().where(Ivr.ivr_id.startswith("w")).count()
        database.close()
    for kind in ("get", "post"):
        for name in ("api", "bare"):
            runs = out[kind][name]
            best = max(runs, key=lambda x: x["requests_per_s"])
            out[kind][name] = {**best, "all_rates": [x["requests_per_s"] for x in runs]}
    return out
