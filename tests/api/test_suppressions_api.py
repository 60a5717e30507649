"""/api/suppressions (trunx's addition) and /api/account's webhook settings."""
from __future__ import annotations

from tests.api.test_openapi import conforms
from trunx import dnc, redis_schema


def test_add_list_remove(client, tenant, other, redis):
    h = tenant.headers
    r = client.post("/api/suppressions", json={"number": "+14155551234", "reason": "asked"},
                    headers=h)
    assert r.status_code == 201
    conforms(r, "/api/suppressions", "post")
    assert r.get_json()["source"] == "api" and r.get_json()["reason"] == "asked"
    assert redis.sismember(redis_schema.dnc_key(tenant.id), "+14155551234")
    again = client.post("/api/suppressions", json={"number": "+14155551234"}, headers=h)
    assert again.status_code == 200 and again.get_json()["reason"] == "asked"
    dnc.suppress(tenant.id, "+12025550199", source="ivr", redis=redis, call_id="c1",
                 did="+19495551234", node="dnc", ivr_id="qualify-business")
    listed = client.get("/api/suppressions", headers=h)
    conforms(listed, "/api/suppressions", "get")
    body = listed.get_json()
    assert body["count"] == 2
    ivr = body["suppressions"][1]
    assert (ivr["source"], ivr["callId"], ivr["did"], ivr["node"], ivr["ivr"]) == (
        "ivr", "c1", "+19495551234", "dnc", "qualify-business")
    assert client.get("/api/suppressions", headers=other.headers).get_json()["count"] == 0
    r = client.delete("/api/suppressions/%2B14155551234", headers=h)
    assert r.get_json() == {"deleted": True, "number": "+14155551234"}
    assert not dnc.is_suppressed(tenant.id, "+14155551234", redis)
    r = client.delete("/api/suppressions/%2B14155551234", headers=h)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "suppression-not-found"


def test_bad_number_is_422(client, tenant):
    r = client.post("/api/suppressions", json={"number": "555-1234"}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.get_json()["error"]["details"][0]["field"] == "number"


def test_account_webhook_url_and_secret(client, tenant, make_app, config):
    h = tenant.headers
    r = client.get("/api/account", headers=h)
    conforms(r, "/api/account", "get")
    assert r.get_json()["webhookUrl"] is None and r.get_json()["webhookSecret"] is None
    r = client.patch("/api/account", json={"webhookUrl": "https://hooks.example/calls"},
                     headers=h)
    conforms(r, "/api/account", "patch")
    body = r.get_json()
    assert body["webhookUrl"] == "https://hooks.example/calls"
    assert body["webhookSecret"].startswith("whsec_")
    assert body["webhookSecretSource"] == "account"
    bad = client.patch("/api/account", json={"webhookUrl": "ftp://x"}, headers=h)
    assert bad.status_code == 422
    cleared = client.patch("/api/account", json={"webhookUrl": None}, headers=h).get_json()
    assert cleared["webhookUrl"] is None and cleared["webhookSecret"] == body["webhookSecret"]
    operator = make_app(config.replace(webhook_secret="op")).test_client()
    shown = operator.get("/api/account", headers=h).get_json()
    assert (shown["webhookSecret"], shown["webhookSecretSource"]) == (None, "operator")


def test_webhook_secret_rotation_keeps_the_old_one_for_a_while(client, tenant):
    h = tenant.headers
    first = client.patch("/api/account", json={"webhookUrl": "https://hooks.example/calls"},
                         headers=h).get_json()
    assert first["webhookSecretPreviousUntil"] is None
    rotated = client.post("/api/account/webhook-secret", headers=h)
    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["webhookSecret"].startswith("whsec_")
    assert body["webhookSecret"] != first["webhookSecret"]
    assert body["webhookSecretPreviousUntil"] is not None
    assert client.get("/api/account", headers=h).get_json() == body


def test_with_an_operator_secret_accounts_do_not_rotate(make_app, config, tenant):
    client = make_app(config.replace(webhook_secret="operator")).test_client()
    r = client.post("/api/account/webhook-secret", headers=tenant.headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "operator-webhook-secret")


def test_suppressing_twice_inside_a_transaction_keeps_the_first_and_the_transaction(
        app, tenant):
    """The second INSERT fails on the unique (account, number): on PostgreSQL that aborts
    the transaction around it unless it ran in its own savepoint."""
    from trunx.models import Suppression

    database = app.extensions["trunx.store"].db
    with database.atomic():
        first = dnc.suppress(tenant.id, "+14155550123", source="api")
        again = dnc.suppress(tenant.id, "+14155550123", source="ivr")
        assert (again.id, again.source) == (first.id, "api")
        assert Suppression.select().where(Suppression.account == tenant.id).count() == 1
