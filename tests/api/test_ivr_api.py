"""IVR endpoints (seed 001) through the Flask test client, against real Redis and SQLite."""
from __future__ import annotations

import copy
import json
import os

import pytest

from tests.api.conftest import SEED_TREE, state
from trunx import redis_schema


def cur(redis, tenant, ivr_id):
    return int(redis.get(redis_schema.ivr_current_key(tenant.id, ivr_id)))


def compiled(redis, tenant, ivr_id, version=None):
    version = version or cur(redis, tenant, ivr_id)
    return json.loads(redis.get(redis_schema.ivr_version_key(tenant.id, ivr_id, version)))


def add_did(client, tenant, number="+19495551234"):
    r = client.post("/api/dids", json={"number": number}, headers=tenant.headers)
    assert r.status_code == 201, r.json
    return number


def test_create_seed_tree(client, tenant, redis, config):
    r = client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert r.status_code == 201
    body = r.json
    assert body["id"] == "qualify-business"
    assert body["nodes"] == SEED_TREE["nodes"]
    assert list(body["nodes"]) == list(SEED_TREE["nodes"])   # order is meaning: entry first
    assert body["version"] == 1 and body["dids"] == []
    # what would go wrong at call time: no target for the bare transfer, and prompts that
    # are neither assets nor staged sounds yet (POST /ivr/:id/audio makes them)
    assert [(w["field"], w["code"]) for w in body["warnings"]] == [
        ("nodes.transfer_ai", "no-transfer-target"),
        ("nodes.welcome.audio", "audio-not-found"),
        ("nodes.has_business.audio", "audio-not-found"),
        ("nodes.unqualified.audio", "audio-not-found")]
    assert body["createdAt"].endswith("Z")
    engine = compiled(redis, tenant, "qualify-business")
    assert engine["entry"] == "welcome"
    assert engine["nodes"]["welcome"]["audio"] == "welcome"   # no asset yet: a sound name


def test_create_generates_id_and_reports_warnings(client, tenant):
    tree = {"nodes": {"menu": {"audio": "hello", "gather": {"1": "bye"}},
                      "bye": {"action": "hangup"}, "orphan": {"action": "hangup"}}}
    r = client.post("/ivr", json=tree, headers=tenant.headers)
    assert r.status_code == 201
    assert r.json["id"].startswith("ivr_")
    assert r.json["warnings"][0] == {"field": "nodes.orphan", "code": "unreachable",
                                     "message": "node 'orphan' cannot be reached from 'menu'"}
    assert [(w["field"], w["code"]) for w in r.json["warnings"][1:]] == [
        ("nodes.menu.audio", "audio-not-found")]


def test_duplicate_id_is_409(client, tenant, other):
    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    r = client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "ivr-exists"
    # ids are per account: another account may use the same one
    assert client.post("/ivr", json=SEED_TREE, headers=other.headers).status_code == 201


def test_list_and_get(client, tenant, other):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    client.post("/ivr", json={**SEED_TREE, "id": "second"}, headers=tenant.headers)
    client.post("/ivr", json={**SEED_TREE, "id": "theirs"}, headers=other.headers)
    r = client.get("/ivr", headers=tenant.headers)
    assert r.status_code == 200
    assert [i["id"] for i in r.json["ivrs"]] == ["qualify-business", "second"]
    assert r.json["count"] == 2
    r = client.get("/ivr/qualify-business", headers=tenant.headers)
    assert r.status_code == 200 and r.json["nodes"] == SEED_TREE["nodes"]


def test_patch_makes_a_new_version_and_keeps_the_old(client, tenant, redis):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    nodes = copy.deepcopy(SEED_TREE["nodes"])
    nodes["welcome"]["gather"]["2"] = "unqualified"
    r = client.patch("/ivr/qualify-business", json={"nodes": nodes}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json["version"] == 2 and r.json["nodes"]["welcome"]["gather"]["2"] == "unqualified"
    assert cur(redis, tenant, "qualify-business") == 2
    # a call that started on v1 still finds v1
    assert "2" not in compiled(redis, tenant, "qualify-business", 1)["nodes"]["welcome"]["gather"]
    assert compiled(redis, tenant, "qualify-business", 2)["entry"] == "welcome"


def test_patch_start_and_immutable_id(client, tenant, redis):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = client.patch("/ivr/qualify-business", json={"start": "has_business"},
                     headers=tenant.headers)
    assert r.status_code == 200 and r.json["start"] == "has_business"
    assert compiled(redis, tenant, "qualify-business")["entry"] == "has_business"
    r = client.patch("/ivr/qualify-business", json={"start": None}, headers=tenant.headers)
    assert "start" not in r.json
    assert compiled(redis, tenant, "qualify-business")["entry"] == "welcome"
    r = client.patch("/ivr/qualify-business", json={"id": "renamed", "nodes": {}},
                     headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["details"][0]["code"] == "immutable"
    r = client.patch("/ivr/qualify-business", json={}, headers=tenant.headers)
    assert r.status_code == 422


BAD_TREES = [
    ("unknown node target", {"welcome": {"audio": "a", "gather": {"1": "nowhere"}}},
     "nodes.welcome.gather.1", "unknown-node"),
    ("bad digit key", {"welcome": {"audio": "a", "gather": {"x": "welcome"}}},
     "nodes.welcome.gather.x", "invalid-dtmf"),
    ("action typo", {"welcome": {"action": "hangpu"}}, "nodes.welcome.action",
     "invalid-action"),
    ("missing audio", {"welcome": {"gather": {"1": "welcome"}}}, "nodes.welcome.audio",
     "required"),
    ("unknown field", {"welcome": {"action": "hangup", "audoi": "x"}},
     "nodes.welcome.audoi", "unknown-field"),
    ("bad transfer number", {"welcome": {"action": "transfer", "to": "555"}},
     "nodes.welcome.to", "invalid-number"),
    ("unknown asset id", {"welcome": {"action": "hangup", "audio": "aud_0123456789abcdef"}},
     "nodes.welcome.audio", "unknown-audio"),
]


@pytest.mark.parametrize("nodes,field,code", [b[1:] for b in BAD_TREES],
                         ids=[b[0] for b in BAD_TREES])
def test_invalid_tree_is_422_and_leaves_nothing(client, tenant, redis, config, nodes, field,
                                                 code):
    before = state(config, redis)
    r = client.post("/ivr", json={"id": "bad", "nodes": nodes}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "invalid-ivr"
    assert {"field": field, "code": code} in [
        {"field": p["field"], "code": p["code"]} for p in r.json["error"]["details"]]
    assert state(config, redis) == before


def test_invalid_patch_keeps_the_current_version(client, tenant, redis, config):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    before = state(config, redis)
    r = client.patch("/ivr/qualify-business", json={"nodes": {"a": {"action": "nope"}}},
                     headers=tenant.headers)
    assert r.status_code == 422
    assert state(config, redis) == before


def test_bad_ids_and_fields(client, tenant):
    r = client.post("/ivr", json={**SEED_TREE, "id": "has space"}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "id"
    r = client.post("/ivr", json={**SEED_TREE, "name": "x"}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json["error"]["details"][0] == {"field": "name", "code": "unknown-field",
                                             "message": r.json["error"]["details"][0]["message"]}


def test_assign_replaces_and_delete_refuses_while_assigned(client, tenant, redis):
    number = add_did(client, tenant)
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    client.post("/ivr", json={**SEED_TREE, "id": "after-hours"}, headers=tenant.headers)
    r = client.post("/ivr/qualify-business/assign", json={"did": number},
                    headers=tenant.headers)
    assert r.status_code == 200
    assert r.json == {"ivr": "qualify-business", "did": number, "assigned": True,
                      "previous": None}
    assert json.loads(redis.get(redis_schema.did_key(number))) == {
        "account": tenant.id, "ivr_id": "qualify-business"}
    r = client.post("/ivr/after-hours/assign", json={"did": number}, headers=tenant.headers)
    assert r.json["previous"] == "qualify-business"
    assert json.loads(redis.get(redis_schema.did_key(number)))["ivr_id"] == "after-hours"
    assert client.get("/ivr/after-hours", headers=tenant.headers).json["dids"] == [number]

    r = client.delete("/ivr/after-hours", headers=tenant.headers)
    assert r.status_code == 409
    assert r.json["error"] == {"code": "ivr-assigned", "message": r.json["error"]["message"],
                               "details": {"dids": [number]}}
    # the old one is free now
    assert client.delete("/ivr/qualify-business", headers=tenant.headers).json == {
        "deleted": True, "id": "qualify-business"}
    assert redis.keys("trunx:ivr:*:qualify-business:*") == []


def test_assign_needs_an_owned_did(client, tenant, other):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = client.post("/ivr/qualify-business/assign", json={"did": "+19495551234"},
                    headers=tenant.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "did-not-found"
    add_did(client, other)
    r = client.post("/ivr/qualify-business/assign", json={"did": "+19495551234"},
                    headers=tenant.headers)
    assert r.status_code == 404
    r = client.post("/ivr/qualify-business/assign", json={"did": "9495551234"},
                    headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["details"][0]["code"] == "invalid-number"


def test_node_audio_stages_and_publishes_the_asset(client, tenant, redis, config):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = client.post("/ivr/qualify-business/audio", headers=tenant.headers, json={
        "node": "welcome", "voice": "rachel",
        "text": "Thank you for calling. Press 1 if you are a business owner."})
    assert r.status_code == 201, r.json
    asset = r.json["audio"]
    assert r.json["node"] == "welcome" and r.json["version"] == 2
    assert r.json["nodes"]["welcome"]["audio"] == asset["id"]
    assert list(r.json["nodes"]) == list(SEED_TREE["nodes"])
    # "rachel" is an ElevenLabs voice; with no key, espeak-ng speaks and says so
    assert r.json["warnings"][0]["code"] == "voice-substituted"
    engine = compiled(redis, tenant, "qualify-business")
    assert engine["entry"] == "welcome"
    assert engine["nodes"]["welcome"]["audio"] == f"{config.asterisk_sounds_path}/{asset['id']}"
    assert os.path.isfile(os.path.join(config.staged_sounds_dir, asset["id"] + ".wav"))
    assert asset["durationSeconds"] > 1


def test_node_audio_unknown_node_leaves_nothing(client, tenant, redis, config):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    before = state(config, redis)
    r = client.post("/ivr/qualify-business/audio", json={"node": "nope", "text": "hi"},
                    headers=tenant.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "node-not-found"
    assert state(config, redis) == before
    r = client.post("/ivr/missing/audio", json={"node": "welcome", "text": "hi"},
                    headers=tenant.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "ivr-not-found"
    r = client.post("/ivr/qualify-business/audio", json={"node": "welcome"},
                    headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "text"
    assert state(config, redis) == before


def test_other_accounts_ivr_is_404(client, tenant, other):
    client.post("/ivr", json=SEED_TREE, headers=other.headers)
    add_did(client, tenant)
    for method, path, body in [
        ("get", "/ivr/qualify-business", None),
        ("patch", "/ivr/qualify-business", {"nodes": SEED_TREE["nodes"]}),
        ("delete", "/ivr/qualify-business", None),
        ("post", "/ivr/qualify-business/audio", {"node": "welcome", "text": "hi"}),
        ("post", "/ivr/qualify-business/assign", {"did": "+19495551234"}),
    ]:
        r = getattr(client, method)(path, json=body, headers=tenant.headers)
        assert r.status_code == 404, (method, path)
        assert r.json["error"]["code"] == "ivr-not-found"
    assert client.get("/ivr", headers=tenant.headers).json == {"ivrs": [], "count": 0}
    assert client.get("/ivr/qualify-business", headers=other.headers).status_code == 200
