"""Audio staged to "the Asterisk host" over SFTP, against a real OpenSSH sshd."""
from __future__ import annotations

import json

import pytest

from tests.api.conftest import SEED_TREE, state
from tests.fakes.sshd import Sshd
from trunx import redis_schema

ASTERISK_SOUNDS = "/var/lib/asterisk/sounds/trunx"   # the folder as Asterisk names it


@pytest.fixture
def sshd(tmp_path):
    with Sshd(tmp_path) as server:
        yield server


@pytest.fixture
def remote(tmp_path):
    return tmp_path / "asterisk-host" / "sounds"


@pytest.fixture
def sftp_client(make_app, config, sshd, remote):
    app = make_app(config.replace(
        staging="sftp", sftp_host=sshd.host, sftp_port=sshd.port, sftp_user=sshd.user,
        sftp_key_file=sshd.client_key, sftp_known_hosts=sshd.known_hosts,
        sftp_dir=str(remote), asterisk_sounds_dir=ASTERISK_SOUNDS))
    return app.test_client()


def test_tts_is_staged_over_sftp_and_deleted(sftp_client, tenant, remote, redis):
    client = sftp_client
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = client.post("/ivr/qualify-business/audio", headers=tenant.headers,
                    json={"node": "welcome", "text": "Thank you for calling."})
    assert r.status_code == 201, r.json
    asset_id = r.json["audio"]["id"]
    assert (remote / f"{asset_id}.wav").is_file()
    compiled = json.loads(redis.get(redis_schema.ivr_version_key(
        tenant.id, "qualify-business", 2)))
    assert compiled["nodes"]["welcome"]["audio"] == f"{ASTERISK_SOUNDS}/{asset_id}"
    r = client.delete(f"/audio/{asset_id}?force=true", headers=tenant.headers)
    assert r.status_code == 200
    assert not (remote / f"{asset_id}.wav").exists()


def test_staging_failure_leaves_nothing(sftp_client, tenant, sshd, remote, redis, config):
    sftp_client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    sshd.stop()
    before = state(config, redis)
    r = sftp_client.post("/audio", json={"name": "n", "text": "hello there"},
                         headers=tenant.headers)
    assert r.status_code == 502 and r.json["error"]["code"] == "staging-failed"
    r = sftp_client.post("/ivr/qualify-business/audio", headers=tenant.headers,
                         json={"node": "welcome", "text": "hello there"})
    assert r.status_code == 502
    assert state(config, redis) == before    # rows, files (cache included), Redis keys
    assert not remote.exists() or not any(remote.iterdir())


def test_unknown_host_key_is_refused(make_app, config, sshd, remote, tenant, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    app = make_app(config.replace(
        staging="sftp", sftp_host=sshd.host, sftp_port=sshd.port, sftp_user=sshd.user,
        sftp_key_file=sshd.client_key, sftp_known_hosts=str(empty), sftp_dir=str(remote)))
    r = app.test_client().post("/audio", json={"name": "n", "text": "hi"},
                               headers=tenant.headers)
    assert r.status_code == 502 and r.json["error"]["code"] == "staging-host-key"
    assert not remote.exists()
