"""PATCH /api/account `default_transfer` (where the IVR seed's bare transfer node goes), how
the engine finds it in Redis, and the warnings a publish answers about what would go wrong
at call time (no transfer target, audio that is neither an asset nor a staged sound)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.conftest import SEED_TREE
from tests.api.test_openapi import conforms
from tests.store_support import store_on
from trunx import redis_schema
from trunx.ivr import store as ivr_store
from trunx.models import Account, Agent


def agent_of(tenant) -> str:
    return Agent.create(account=tenant.id, name="Sarah", prompt="Be helpful.").id


def published(redis, tenant):
    raw = redis.get(redis_schema.default_transfer_key(tenant.id))
    return json.loads(raw) if raw else None


def patch(client, tenant, value):
    return client.patch("/api/account", json={"default_transfer": value},
                        headers=tenant.headers)


def test_a_number_is_stored_shown_and_published(client, tenant, redis):
    r = patch(client, tenant, "+14155550123")
    assert r.status_code == 200, r.json
    conforms(r, "/api/account", "patch")
    assert r.json["default_transfer"] == "+14155550123"
    got = client.get("/api/account", headers=tenant.headers)
    conforms(got, "/api/account", "get")
    assert got.json["default_transfer"] == "+14155550123"
    assert Account.get_by_id(tenant.id).default_transfer == "+14155550123"
    assert published(redis, tenant) == {"to": "+14155550123"}


def test_an_agent_of_the_account_is_stored_and_null_clears_it(client, tenant, redis):
    agent = agent_of(tenant)
    assert patch(client, tenant, agent).json["default_transfer"] == agent
    assert published(redis, tenant) == {"agent": agent}
    cleared = patch(client, tenant, None)
    assert cleared.status_code == 200 and cleared.json["default_transfer"] is None
    assert Account.get_by_id(tenant.id).default_transfer is None
    assert published(redis, tenant) is None


@pytest.mark.parametrize("value", [
    "4155550123",          # national, not E.164
    "+1415555012a",
    "+",
    "",
    "no-such-agent",
    5,
    ["+14155550123"],
])
def test_anything_else_is_a_422_naming_the_field(client, tenant, redis, value):
    patch(client, tenant, "+14155550123")
    r = patch(client, tenant, value)
    assert r.status_code == 422, r.json
    assert [d["field"] for d in r.json["error"]["details"]] == ["default_transfer"]
    assert r.json["error"]["details"][0]["code"] == "invalid-transfer-target"
    # nothing half-written
    assert Account.get_by_id(tenant.id).default_transfer == "+14155550123"
    assert published(redis, tenant) == {"to": "+14155550123"}


def test_another_accounts_agent_is_refused(client, tenant, other):
    r = patch(client, tenant, agent_of(other))
    assert r.status_code == 422
    assert "no agent" in r.json["error"]["message"]


def test_a_bare_transfer_warns_until_the_account_has_a_default(client, tenant):
    codes = lambda body: [(w["field"], w["code"]) for w in body["warnings"]  # noqa: E731
                          if w["code"] == "no-transfer-target"]
    created = client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert codes(created.json) == [("nodes.transfer_ai", "no-transfer-target")]
    assert "PATCH /api/account" in created.json["warnings"][0]["message"]

    patch(client, tenant, agent_of(tenant))
    again = client.patch("/ivr/qualify-business", json={"nodes": SEED_TREE["nodes"]},
                         headers=tenant.headers)
    assert again.status_code == 200 and codes(again.json) == []


def test_a_transfer_with_a_target_never_warns(client, tenant):
    tree = {"nodes": {"t": {"action": "transfer", "to": "+14155550123"}}}
    r = client.post("/ivr", json=tree, headers=tenant.headers)
    assert r.status_code == 201 and r.json["warnings"] == []


def test_audio_warns_unless_it_is_an_asset_or_a_staged_sound(client, tenant, config):
    tree = {"nodes": {"menu": {"audio": "greeting.wav", "gather": {"1": "bye"},
                               "invalid_audio": "try_again"},
                      "bye": {"action": "hangup", "audio": "digits/1"}}}
    r = client.post("/ivr", json={"id": "m", **tree}, headers=tenant.headers)
    assert [(w["field"], w["code"]) for w in r.json["warnings"]] == [
        ("nodes.menu.audio", "audio-not-found"),
        ("nodes.menu.invalid_audio", "audio-not-found"),
        ("nodes.bye.audio", "audio-not-found")]

    # a sound the staging target holds is no longer reported
    staged = Path(config.staged_sounds_dir)
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "greeting.wav").write_bytes(b"RIFF")
    r = client.patch("/ivr/m", json={"nodes": tree["nodes"]}, headers=tenant.headers)
    assert [w["field"] for w in r.json["warnings"]] == ["nodes.menu.invalid_audio",
                                                        "nodes.bye.audio"]


def test_resync_rebuilds_the_defaults_and_drops_stale_ones(client, tenant, other, redis):
    patch(client, tenant, "+14155550123")
    redis.delete(redis_schema.default_transfer_key(tenant.id))      # Redis lost it
    redis.set(redis_schema.default_transfer_key(other.id), '{"to": "+14155550999"}')  # stale
    counts = ivr_store.resync(store_on(redis))
    assert counts["default_transfers"] == 1
    assert published(redis, tenant) == {"to": "+14155550123"}
    assert published(redis, other) is None
