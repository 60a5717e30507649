"""`trunx engine` and `trunx api` as a service manager runs them: they check the config,
become the service (the same process), serve, and stop on SIGTERM; a config they would
misread stops them at start with the key's name."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from devtools.stack import free_port, wait_until

pytestmark = pytest.mark.slow


def service(argv, ini, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trunx", "--config", str(ini), *argv],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stopped(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


@pytest.fixture
def ini(tmp_path, redis_server):
    path = tmp_path / "trunx.ini"
    path.write_text(f"[trunx]\nenvironment = production\nami_secret = an-operator-secret\n"
                    f"data_dir = {tmp_path / 'data'}\nredis_url = {redis_server.url}\n"
                    f"agi_port = {free_port()}\napi_port = {free_port()}\n"
                    f"ami_port = {free_port()}\n")
    return path


def test_trunx_engine_serves_fastagi_and_stops_on_sigterm(ini):
    agi_port = int(next(line.split("= ")[1] for line in ini.read_text().splitlines()
                        if line.startswith("agi_port")))
    proc = service(["engine"], ini)
    try:
        wait_until(lambda: proc.poll() is not None or listening(agi_port), timeout=30,
                   message="the engine listening")
        assert proc.poll() is None
    finally:
        code, out = stopped(proc)
    assert code == 0, out


def test_trunx_api_serves_under_gunicorn_and_stops_on_sigterm(ini):
    api_port = int(next(line.split("= ")[1] for line in ini.read_text().splitlines()
                        if line.startswith("api_port")))
    proc = service(["api"], ini)
    try:
        wait_until(lambda: proc.poll() is not None or listening(api_port), timeout=30,
                   message="the API listening")
        reply = requests.get(f"http://127.0.0.1:{api_port}/api/account", timeout=10)
        assert reply.status_code == 401 and reply.json()["error"]["code"]
    finally:
        code, out = stopped(proc)
    assert code == 0, out


@pytest.mark.parametrize("command", ["engine", "api"])
def test_a_development_secret_in_production_stops_the_service_at_start(ini, command):
    proc = service([command], ini, TRUNX_AMI_SECRET="trunx-dev-secret")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "trunx: config refused: ami_secret: is the development secret" in out
