"""The `trunx` command, run as a user runs it (`python -m trunx`, a separate process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis as redis_lib

from admin_api import create_app
from devtools.stack import RedisServer
from tests.api.conftest import SEED_TREE
from trunx import dnc, redis_schema


def trunx(config, *args, extra_env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRUNX_") and k != "ELEVENLABS_API_KEY"}
    env.update(TRUNX_DATA_DIR=config.data_dir, TRUNX_REDIS_URL=config.redis_url,
               TRUNX_DATABASE_URL=config.database_url)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "trunx", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_accounts_and_keys(app, config):
    out = trunx(config, "accounts", "create", "Acme Dental")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    account_id, key = lines["account"], lines["key"]
    assert account_id.startswith("acc_") and key.startswith("tk_live_")
    assert "shown once" in out.stderr
    client = app.test_client()
    assert client.get("/ivr", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    out = trunx(config, "keys", "create", account_id)
    second = out.stdout.split()[1]
    assert second != key
    assert client.get("/ivr", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    out = trunx(config, "keys", "create", "acc_missing")
    assert out.returncode == 1 and "no account" in out.stderr
    assert trunx(config, "accounts", "create", "  ").returncode == 2


def test_config_masks_secrets(config):
    out = trunx(config, "config", extra_env={"ELEVENLABS_API_KEY": "sk-very-secret",
                                             "TRUNX_SFTP_PASSWORD": "hunter2"})
    assert out.returncode == 0
    shown = json.loads(out.stdout)
    assert shown["elevenlabs_api_key"] == "***" and shown["sftp_password"] == "***"
    assert shown["data_dir"] == config.data_dir
    assert "sk-very-secret" not in out.stdout and "hunter2" not in out.stdout


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_redis_restart_is_healed_by_resync(own_redis, config):
    config = config.replace(redis_url=own_redis.url)
    client_redis = redis_lib.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        app = create_app(config, redis=client_redis)
        from trunx import accounts

        account = accounts.create_account("Acme")
        headers = {"Authorization": f"Bearer {accounts.create_key(account)}"}
        client = app.test_client()
        client.post("/ivr", json=SEED_TREE, headers=headers)
        client.patch("/ivr/qualify-business", json={"start": "welcome"}, headers=headers)
        client.post("/api/dids", json={"number": "+19495551234"}, headers=headers)
        client.post("/ivr/qualify-business/assign", json={"did": "+19495551234"},
                    headers=headers)
        dnc.suppress(account.id, "+13105550000", source="api", redis=client_redis)
        before = {k: client_redis.get(k) for k in client_redis.keys("trunx:ivr:*:cur")}

        own_redis.restart()        # no persistence: everything the engine reads is gone
        assert client_redis.keys("*") == []

        out = trunx(config, "resync")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"ivrs": 1, "dids": 1, "suppressions": 1,
                                           "default_transfers": 0}
        assert {k: client_redis.get(k) for k in client_redis.keys("trunx:ivr:*:cur")} == before
        assert json.loads(client_redis.get(redis_schema.did_key("+19495551234"))) == {
            "account": account.id, "ivr_id": "qualify-business"}
        assert client_redis.sismember(redis_schema.dnc_key(account.id), "+13105550000")
        # and the API keeps working on the same client after the restart
        r = client.patch("/ivr/qualify-business", json={"start": None}, headers=headers)
        assert r.status_code == 200 and r.json["version"] == 3
    finally:
        client_redis.close()


def test_resync_reports_unreachable_redis(config):
    from devtools.stack import free_port

    out = trunx(config, "resync",
                extra_env={"TRUNX_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert out.returncode == 1 and "unreachable" in out.stderr


def test_ivr_diagram_as_mermaid_dot_and_svg(app, client, tenant, config):
    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    args = ("ivr", "diagram", tenant.id, "qualify-business")
    mermaid = trunx(config, *args)
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith("flowchart TD")
    dot = trunx(config, *args, "--dot")
    assert dot.stdout.startswith("digraph ivr {") and 'id="node-dnc"' in dot.stdout
    svg = trunx(config, *args, "--svg")
    assert svg.returncode == 0, svg.stderr
    assert svg.stdout.lstrip().startswith("<?xml") and "</svg>" in svg.stdout
    assert all(f">{name}</text>" in svg.stdout for name in SEED_TREE["nodes"])
    missing = trunx(config, "ivr", "diagram", tenant.id, "nope", "--svg")
    assert missing.returncode == 1 and "no IVR 'nope'" in missing.stderr
