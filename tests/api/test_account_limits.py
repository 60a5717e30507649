"""PATCH /api/account `maxConcurrentCalls` and `callsPerSecond`: the account's own outbound
limits, which every engine's dialer holds its calls to (docs/api.md "How a call is placed")."""
from __future__ import annotations

import pytest

from agi_server.cluster.limits import AccountLimits
from tests.api.test_openapi import conforms
from trunx.models import Account


def patch(client, tenant, **body):
    return client.patch("/api/account", json=body, headers=tenant.headers)


def test_limits_are_stored_shown_and_cleared(client, tenant):
    r = patch(client, tenant, maxConcurrentCalls=3, callsPerSecond=0.5)
    assert r.status_code == 200, r.json
    conforms(r, "/api/account", "patch")
    assert (r.json["maxConcurrentCalls"], r.json["callsPerSecond"]) == (3, 0.5)
    row = Account.get_by_id(tenant.id)
    assert (row.max_concurrent_calls, row.calls_per_second) == (3, 0.5)
    got = client.get("/api/account", headers=tenant.headers)
    conforms(got, "/api/account", "get")
    assert got.json["maxConcurrentCalls"] == 3
    cleared = patch(client, tenant, maxConcurrentCalls=None, callsPerSecond=None)
    assert (cleared.json["maxConcurrentCalls"], cleared.json["callsPerSecond"]) == (None, None)


@pytest.mark.parametrize("field,value", [
    ("maxConcurrentCalls", 0), ("maxConcurrentCalls", -1), ("maxConcurrentCalls", 1.5),
    ("maxConcurrentCalls", "3"), ("maxConcurrentCalls", True), ("callsPerSecond", 0),
    ("callsPerSecond", 5000), ("callsPerSecond", "1"),
])
def test_bad_values_are_a_422_naming_the_field_and_change_nothing(client, tenant, field,
                                                                  value):
    r = patch(client, tenant, webhookUrl="https://example.com/hook", **{field: value})
    assert r.status_code == 422, r.json
    assert field in str(r.json["error"]["details"])
    row = Account.get_by_id(tenant.id)
    assert (row.webhook_url, row.max_concurrent_calls, row.calls_per_second) == \
        (None, None, None)


async def test_the_dialer_holds_an_account_to_the_lower_of_its_cap_and_the_quota(app, config):
    """A cap above the operator's max_concurrent_calls is stored as asked; the engines use
    the quota (agi_server/cluster/limits.py). `app` binds the models to the test database."""
    account = Account.create(name="limits", max_concurrent_calls=config.max_concurrent_calls + 5,
                             calls_per_second=2.5)
    other = Account.create(name="defaults")

    async def db(fn, *args):
        return fn(*args)

    limits = AccountLimits(config, db)
    assert await limits.get(account.id) == (config.max_concurrent_calls, 2.5)
    assert await limits.get(other.id) == (config.max_concurrent_calls, 0.0)
    Account.update(max_concurrent_calls=3).where(Account.id == account.id).execute()
    assert await limits.get(account.id) == (config.max_concurrent_calls, 2.5)   # cached
    limits.ttl = 0
    assert await limits.get(account.id) == (3, 2.5)
