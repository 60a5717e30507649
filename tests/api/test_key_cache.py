"""API keys verified once per worker, revoked everywhere at once through the Redis epoch."""
from __future__ import annotations

import redis as redis_lib

from trunx import accounts
from trunx.models import ApiKey, utcnow


def test_a_verified_key_is_served_from_the_cache(client, tenant):
    assert client.get("/ivr", headers=tenant.headers).status_code == 200
    # Revoked behind the API's back (no epoch bump): the worker still trusts what it
    # verified, which shows the second request never asked the database.
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == tenant.id).execute()
    assert client.get("/ivr", headers=tenant.headers).status_code == 200


def test_revoking_bumps_the_epoch_and_every_cache_drops_the_key(client, tenant, redis):
    assert client.get("/ivr", headers=tenant.headers).status_code == 200
    key = ApiKey.get(ApiKey.account == tenant.id)
    assert accounts.revoke_key(key.id, redis=redis)
    assert client.get("/ivr", headers=tenant.headers).status_code == 401


def test_with_redis_down_every_request_asks_the_database(app, tenant):
    keys = accounts.KeyCache(redis_lib.Redis(port=1, socket_connect_timeout=0.2))
    assert keys.authenticate(tenant.key).id == tenant.id
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == tenant.id).execute()
    assert keys.authenticate(tenant.key) is None


def test_bad_keys_take_no_room(app, redis):
    keys = accounts.KeyCache(redis)
    for bearer in ("tk_live_nope", "Bearer x", "", None, "tk_live_" + "a" * 300):
        assert keys.authenticate(bearer) is None
    assert keys._entries == {}
