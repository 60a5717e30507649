"""DIDs (trunx's addition), authentication, and the error envelope for bad requests."""
from __future__ import annotations

import json

import pytest

from tests.api.conftest import SEED_TREE, state
from tests.store_support import store_on
from trunx import accounts, redis_schema
from trunx.models import ApiKey


def error(r) -> dict:
    assert r.is_json, r.data
    assert set(r.json) == {"error"} and set(r.json["error"]) == {"code", "message", "details"}
    return r.json["error"]


def test_did_lifecycle(client, tenant, redis):
    r = client.post("/api/dids", json={"number": "+19495551234", "label": "main line"},
                    headers=tenant.headers)
    assert r.status_code == 201
    assert r.json["number"] == "+19495551234" and r.json["label"] == "main line"
    assert r.json["ivr"] is None
    assert client.get("/api/dids", headers=tenant.headers).json["count"] == 1
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    client.post("/ivr/qualify-business/assign", json={"did": "+19495551234"},
                headers=tenant.headers)
    assert client.get("/api/dids", headers=tenant.headers).json["dids"][0]["ivr"] == \
        "qualify-business"
    # the + URL-encoded, as a client library sends it; deleting unassigns first
    r = client.delete("/api/dids/%2B19495551234", headers=tenant.headers)
    assert r.json == {"deleted": True, "number": "+19495551234"}
    assert redis.get(redis_schema.did_key("+19495551234")) is None
    assert client.delete("/ivr/qualify-business", headers=tenant.headers).status_code == 200
    # a literal + in a path is a plus, not a space
    client.post("/api/dids", json={"number": "+442071838750"}, headers=tenant.headers)
    r = client.delete("/api/dids/+442071838750", headers=tenant.headers)
    assert r.status_code == 200 and r.json["number"] == "+442071838750"


def test_did_conflicts_and_validation(client, tenant, other):
    client.post("/api/dids", json={"number": "+19495551234"}, headers=other.headers)
    r = client.post("/api/dids", json={"number": "+19495551234"}, headers=tenant.headers)
    assert r.status_code == 409 and error(r)["code"] == "did-exists"
    for bad in ["9495551234", "+0123", 19495551234, None]:
        r = client.post("/api/dids", json={"number": bad}, headers=tenant.headers)
        assert r.status_code == 422 and error(r)["details"][0]["field"] == "number"
    # another account's DID is not there for this one
    r = client.delete("/api/dids/+19495551234", headers=tenant.headers)
    assert r.status_code == 404 and error(r)["code"] == "did-not-found"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer tk_live_nope", "Basic abc",
                                    "tk_live_x"])
def test_missing_or_bad_key_is_401(client, tenant, header):
    headers = {"Authorization": header} if header else {}
    for method, path in [("get", "/ivr"), ("post", "/ivr"), ("get", "/audio"),
                         ("post", "/audio/upload"), ("delete", "/audio/aud_x"),
                         ("get", "/audio/aud_x/file"), ("get", "/api/dids")]:
        r = getattr(client, method)(path, headers=headers)
        assert r.status_code == 401, (method, path)
        assert error(r)["code"] == "unauthorized"


def test_revoked_key_is_401(client, tenant):
    key = ApiKey.get(ApiKey.account == tenant.id)
    assert key.prefix == tenant.key[:12] and key.key_hash != tenant.key
    assert accounts.revoke_key(key.id)
    assert client.get("/ivr", headers=tenant.headers).status_code == 401


def test_second_key_works(client, tenant):
    key = accounts.create_key(tenant.id)
    assert key.startswith("tk_live_") and key != tenant.key
    assert client.get("/ivr", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_unknown_route_and_method_are_json(client, tenant):
    r = client.get("/nope", headers=tenant.headers)
    assert r.status_code == 404 and error(r)["code"] == "not-found"
    r = client.put("/ivr", headers=tenant.headers)
    assert r.status_code == 405 and error(r)["code"] == "method-not-allowed"
    assert "POST" in error(r)["details"]["allowed"]


def test_malformed_json_and_wrong_content_type(client, tenant, redis, config):
    before = state(config, redis)
    h = {**tenant.headers, "Content-Type": "application/json"}
    r = client.post("/ivr", data='{"id": "x", "nodes": {', headers=h)
    assert r.status_code == 400 and error(r)["code"] == "invalid-json"
    r = client.post("/ivr", data="[1, 2]", headers=h)
    assert r.status_code == 400 and error(r)["code"] == "invalid-json"
    r = client.post("/ivr", data=json.dumps(SEED_TREE), headers={
        **tenant.headers, "Content-Type": "text/plain"})
    assert r.status_code == 415 and error(r)["code"] == "unsupported-media-type"
    r = client.post("/audio", data={"name": "x", "text": "y"}, headers=tenant.headers)
    assert r.status_code == 415
    r = client.post("/audio/upload", json={"name": "x"}, headers=tenant.headers)
    assert r.status_code == 415
    assert state(config, redis) == before


def test_redis_down_is_503_and_resync_heals(make_app, config, redis):
    """Redis refused: the API says so in the envelope; SQLite kept the record, and
    `resync` publishes it once Redis is back."""
    from admin_api import create_app
    from devtools.stack import free_port
    from trunx.ivr import store as ivr_store

    app = create_app(config.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    app.testing = True
    account = accounts.create_account("x")
    key = accounts.create_key(account)
    r = app.test_client().post("/ivr", json=SEED_TREE,
                               headers={"Authorization": f"Bearer {key}"})
    app.extensions["trunx.store"].redis.close()
    assert r.status_code == 503 and error(r)["code"] == "redis-unavailable"
    assert redis.keys("*") == []
    assert ivr_store.resync(store_on(redis))["ivrs"] == 1
    assert redis.get(redis_schema.ivr_current_key(account.id, "qualify-business")) == "1"


def test_openapi_document_is_public(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.json["openapi"].startswith("3.1")
