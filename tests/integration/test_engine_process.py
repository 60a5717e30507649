"""`python -m agi_server` as an operator runs it, configured by the environment: JSON log
lines on TRUNX_LOG_JSON, health on its own port, and readiness saying what is missing (no
Asterisk here: AMI is refused) until it is stopped with SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests

from devtools.stack import free_port


def test_the_engine_process_logs_json_and_answers_health(tmp_path, redis_server):
    http_port = free_port()
    env = {**os.environ, "TRUNX_DATA_DIR": str(tmp_path / "data"),
           "TRUNX_REDIS_URL": redis_server.url, "TRUNX_AGI_PORT": str(free_port()),
           "TRUNX_AMI_PORT": str(free_port()), "TRUNX_ENGINE_HTTP_PORT": str(http_port),
           "TRUNX_LOG_JSON": "1", "TRUNX_AGI_EVENT_LOOP": "asyncio"}
    proc = subprocess.Popen([sys.executable, "-m", "agi_server"], env=env,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and proc.poll() is None, "no engine"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert (checks["agi"], checks["redis"], checks["database"]) == ("ok", "ok", "ok")
        assert checks["ami"] == "failing: not logged in"
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert "trunx_ami_connected 0.0" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines()]   # every line is JSON
    assert any(x["message"].startswith("FastAGI listening") for x in lines)
    assert any(x["logger"] == "agi_server.health" for x in lines)
    assert all({"ts", "level", "logger", "message", "pid"} <= set(x) for x in lines)
