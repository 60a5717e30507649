"""The API's /healthz, /readyz and /metrics (admin_api/observe.py), in the app and under
gunicorn with several workers (the multiprocess metrics and JSON access log lines)."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis as redis_lib
import requests

from devtools.stack import free_port
from trunx import accounts, db


def sample(text: str, name: str, **labels) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search(r"^" + pattern + r"$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_health_needs_no_key_and_readiness_checks_both_stores(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert (r.status_code, r.get_json()) == (200, {"ready": True, "checks": {
        "database": "ok", "redis": "ok"}})


def test_not_ready_while_redis_is_down(make_app, config):
    dead = redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    app = make_app(config)
    app.extensions["trunx.store"].redis = dead
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["ready"] is False and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("failing: ConnectionError")


def test_metrics_move_with_requests_tts_and_redis_errors(make_app, config, tenant):
    app = make_app(config)
    client = app.test_client()
    text = client.get("/metrics").get_data(as_text=True)
    before = sample(text, "trunx_api_requests_total", method="GET", endpoint="dids.list_dids",
                    status="200")
    listed = client.get("/api/dids", headers=tenant.headers)
    assert listed.status_code == 200, listed.get_json()
    body = {"name": "hi", "text": "hello there", "engine": "standard"}
    for _ in range(2):      # rendered once, then served from the content cache
        assert client.post("/audio", json=body, headers=tenant.headers).status_code == 201
    app.extensions["trunx.store"].redis = redis_lib.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    assert client.post("/api/suppressions", json={"number": "+14155550000"},
                       headers=tenant.headers).status_code == 503
    r = client.get("/metrics")
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert sample(text, "trunx_api_requests_total", method="GET", endpoint="dids.list_dids",
                  status="200") == before + 1
    assert sample(text, "trunx_tts_cache_total", result="miss") == 1
    assert sample(text, "trunx_tts_cache_total", result="hit") == 1
    assert sample(text, "trunx_dependency_errors_total", dependency="redis") == 1
    assert sample(text, "trunx_api_request_seconds_count", endpoint="audio.create_tts") == 2


@pytest.mark.slow
def test_gunicorn_workers_sum_their_metrics_and_log_json(tmp_path, redis_server):
    env = {**os.environ, "TRUNX_DATA_DIR": str(tmp_path / "data"),
           "TRUNX_REDIS_URL": redis_server.url, "TRUNX_LOG_JSON": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           # bursts of 32 until both workers served: past the default 100 a second, the
           # rest were 429s, counted under another status than the one summed below
           "TRUNX_API_RATE_LIMIT": "100000"}
    os.makedirs(env["PROMETHEUS_MULTIPROC_DIR"])
    from trunx import config as trunx_config
    db.connect(trunx_config.load(env={}, data_dir=env["TRUNX_DATA_DIR"]))
    key = accounts.create_key(accounts.create_account("gunicorn"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf",
         "-w", "2", "-b", f"127.0.0.1:{port}", "admin_api.wsgi:app"],
        env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "gunicorn did not start"
            time.sleep(0.1)
        # bursts of concurrent requests until both workers have served some (each worker's
        # counters are a file of its own: counter_<pid>.db)
        session_count = 0
        with ThreadPoolExecutor(16) as pool:
            while len(glob.glob(os.path.join(env["PROMETHEUS_MULTIPROC_DIR"],
                                             "counter_*.db"))) < 2 or not session_count:
                assert time.monotonic() < deadline + 30, "one worker took every request"
                list(pool.map(lambda _: requests.get(
                    f"{base}/api/dids", headers={"Authorization": f"Bearer {key}"},
                    timeout=5), range(32)))
                session_count += 32
        seen = set()
        for _ in range(10):               # whichever worker answers, the sum is the same
            text = requests.get(f"{base}/metrics", timeout=5).text
            seen.add(sample(text, "trunx_api_requests_total", method="GET",
                            endpoint="dids.list_dids", status="200"))
        assert seen == {session_count}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [x for x in lines if x["logger"] == "trunx.access"]
    dids = [x for x in access if x["path"] == "/api/dids"]
    assert len(dids) == session_count
    assert {a["status"] for a in dids} == {200} and dids[0]["account_id"]
    assert len({a["pid"] for a in access}) == 2      # both workers served (and logged)
