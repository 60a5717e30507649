"""Idempotency-Key on POST /api/voice/agents/{id}/call: a retry places no second call."""
from __future__ import annotations

from tests.api.test_agents_call import agent, config, dids, fake, place  # noqa: F401 (fixtures)
from trunx import redis_schema
from trunx.models import Call


def test_a_retried_agent_call_is_placed_once(client, tenant, agent, redis):  # noqa: F811
    dids(tenant, "+14155550101")
    headers = {**tenant.headers, "Idempotency-Key": "agent-call-1"}
    url = f"/api/voice/agents/{agent['id']}/call"
    first = client.post(url, json={"to": "+14155551234"}, headers=headers)
    again = client.post(url, json={"to": "+14155551234"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Call.select().count() == 1
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1
    # without the key, the same request is another call
    assert place(client, tenant, agent, to="+14155551234").status_code == 201
    assert Call.select().count() == 2
