"""API keys: a worker probes a key's row at most once per KeyCache.RECHECK seconds, so a
revocation made anywhere is refused by every worker within that window, with no Redis
involved; unknown and revoked keys are probed every time; the account behind a key is
loaded once."""
from __future__ import annotations

import redis as redis_lib

from devtools.stack import wait_until
from trunx import accounts
from trunx.models import Account, ApiKey, utcnow

WINDOW = accounts.KeyCache.RECHECK


def refused_within_the_window(client, headers) -> None:
    """`client` answers 401 for the (revoked) key within the window, plus slack for a
    loaded machine (TimeoutError otherwise)."""
    wait_until(lambda: client.get("/ivr", headers=headers).status_code == 401,
               timeout=WINDOW + 2, message="the revoked key refused")


def test_a_key_revoked_straight_in_the_database_is_refused_within_the_window(client, tenant):
    assert client.get("/ivr", headers=tenant.headers).status_code == 200
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == tenant.id).execute()
    refused_within_the_window(client, tenant.headers)


def test_a_key_revoked_through_one_worker_is_refused_by_another(make_app, config, tenant):
    one, two = make_app(config).test_client(), make_app(config).test_client()
    assert one.get("/ivr", headers=tenant.headers).status_code == 200
    assert two.get("/ivr", headers=tenant.headers).status_code == 200
    assert accounts.revoke_key(ApiKey.get(ApiKey.account == tenant.id).id)
    refused_within_the_window(two, tenant.headers)
    assert one.get("/ivr", headers=tenant.headers).status_code == 401


def test_a_key_is_trusted_for_the_window_then_probed_again(app, tenant):
    now = [1000.0]
    keys = accounts.KeyCache(app.extensions["trunx.store"].db, clock=lambda: now[0])
    assert keys.authenticate(tenant.key).id == tenant.id
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == tenant.id).execute()
    now[0] += WINDOW * 0.9             # inside the window: the last probe's answer stands
    assert keys.authenticate(tenant.key).id == tenant.id
    now[0] += WINDOW * 0.2             # past it: probed, refused, and forgotten
    assert keys.authenticate(tenant.key) is None
    assert keys._entries == {}
    assert keys.authenticate(tenant.key) is None     # a refused key is probed every time


def test_a_new_key_works_at_once_and_an_unrevoked_one_is_not_probed_in_the_window(app, tenant):
    now = [1000.0]
    keys = accounts.KeyCache(app.extensions["trunx.store"].db, clock=lambda: now[0])
    assert keys.authenticate(tenant.key + "x") is None      # unknown: refused, not kept
    fresh = accounts.create_key(tenant.id)
    assert keys.authenticate(fresh).id == tenant.id          # no refusal remembered
    # inside the window the row is not read: a deleted row still authenticates ...
    ApiKey.delete().where(ApiKey.key_hash == accounts.hash_key(fresh)).execute()
    now[0] += WINDOW / 2
    assert keys.authenticate(fresh).id == tenant.id
    now[0] += WINDOW                   # ... until the window ends
    assert keys.authenticate(fresh) is None


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
