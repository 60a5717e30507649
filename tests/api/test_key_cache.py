"""API keys: every request probes the key's row, so a revocation made anywhere is refused
on the next request, with no Redis involved; the account behind a key is loaded once."""
from __future__ import annotations

import redis as redis_lib

from trunx import accounts
from trunx.models import Account, ApiKey, utcnow


def test_a_key_revoked_straight_in_the_database_is_refused_at_once(client, tenant):
    assert client.get("/ivr", headers=tenant.headers).status_code == 200
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == tenant.id).execute()
    assert client.get("/ivr", headers=tenant.headers).status_code == 401


def test_a_key_revoked_through_one_worker_is_refused_by_another(make_app, config, tenant):
    one, two = make_app(config).test_client(), make_app(config).test_client()
    assert one.get("/ivr", headers=tenant.headers).status_code == 200
    assert two.get("/ivr", headers=tenant.headers).status_code == 200
    assert accounts.revoke_key(ApiKey.get(ApiKey.account == tenant.id).id)
    assert two.get("/ivr", headers=tenant.headers).status_code == 401
    assert one.get("/ivr", headers=tenant.headers).status_code == 401


def test_the_account_is_loaded_once_per_key(app, tenant):
    keys = accounts.KeyCache(app.extensions["trunx.store"].db)
    first = keys.authenticate(tenant.key)
    # renamed behind the cache's back: the cached account object is what comes back
    Account.update(name="Renamed").where(Account.id == tenant.id).execute()
    again = keys.authenticate(tenant.key)
    assert again is first and again.name == "Acme Dental"


def test_keys_need_no_redis(make_app, config, tenant, redis):
    made = make_app(config).test_client()
    assert made.post("/ivr", headers=tenant.headers,
                     json={"id": "r", "nodes": {"a": {"action": "hangup"}}}).status_code == 201
    dead = redis_lib.Redis(port=1, socket_connect_timeout=0.2)
    app = make_app(config)
    app.extensions["trunx.store"].redis = dead
    client = app.test_client()
    # no Redis round trip on a read: the key check and GET /ivr/:id answer with Redis down
    assert client.get("/ivr/r", headers=tenant.headers).status_code == 200
    bad = {"Authorization": "Bearer " + tenant.key[:-1] + "x"}
    assert client.get("/ivr/r", headers=bad).status_code == 401


def test_bad_keys_take_no_room(app):
    keys = accounts.KeyCache(app.extensions["trunx.store"].db)
    for bearer in ("tk_live_nope", "Bearer x", "", None, "tk_live_" + "a" * 300):
        assert keys.authenticate(bearer) is None
    assert keys._entries == {}
