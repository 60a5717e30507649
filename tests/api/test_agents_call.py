"""POST /api/voice/agents/{id}/call (seed 003): validation, DNC, the DID chosen when `from`
is left out (and why), and the call placed through admin_api.voice.service for the engine."""
from __future__ import annotations

import pytest

from admin_api.voice import service as voice_service
from tests.api.test_agents import SEED_AGENT, create, problem
from tests.api.test_openapi import conforms
from tests.fakes.fake_ultravox import FakeUltravox
from trunx import calls, dnc, redis_schema
from trunx.models import Call, Did

KEY = "uv-test-key"
PATH = "/api/voice/agents/{agent_id}/call"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def config(config, fake):
    return config.replace(ultravox_api_key=KEY, ultravox_base_url=fake.base_url)


@pytest.fixture
def agent(client, tenant):
    return create(client, tenant)


def dids(tenant, *numbers):
    for n in numbers:
        Did.create(number=n, account=tenant.id)


def place(client, tenant, agent, **body):
    return client.post(f"/api/voice/agents/{agent['id']}/call", json=body,
                       headers=tenant.headers)


def test_the_seed_example_picks_a_local_did_and_says_why(client, tenant, agent, redis):
    dids(tenant, "+12125550101", "+14155550101", "+16195550101")
    r = place(client, tenant, agent, to="+14155551234")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert list(body)[:4] == ["id", "callId", "status", "agentId"]
    assert body["status"] == "initiated" and body["agentId"] == agent["id"]
    assert body["callId"].startswith("CA") and len(body["callId"]) == 34
    assert (body["from"], body["fromReason"]) == ("+14155550101", "same-area-code")
    assert 0 <= body["fromHealth"]["score"] <= 100
    conforms(r, PATH, "post")
    row = Call.get_by_id(body["id"])
    assert (row.direction, row.status, row.provider) == ("outbound", "initiated", "ultravox")
    assert (row.from_number, row.to_number, row.agent_id) == (
        "+14155550101", "+14155551234", agent["id"])
    assert row.ai["systemPrompt"] == SEED_AGENT["prompt"]
    assert row.ai["ultravoxAgentId"] == agent["ultravoxId"]
    assert row.max_duration == 300
    assert voice_service.queue_position(redis, row.id) == 1
    # GET /api/voice/{id}'s form of it has the seed's ai object
    assert calls.call_json(row)["ai"]["status"] == "pending"


def test_same_state_then_health(client, tenant, agent):
    dids(tenant, "+12125550101", "+16195550101")
    body = place(client, tenant, agent, to="+14155551234").get_json()
    assert (body["from"], body["fromReason"]) == ("+16195550101", "same-state")
    body = place(client, tenant, agent, to="+13125551234").get_json()   # Chicago: no IL DID
    assert body["fromReason"] == "health-score"


def test_an_explicit_from_is_used(client, tenant, agent):
    dids(tenant, "+12125550101", "+14155550101")
    body = place(client, tenant, agent, to="+14155551234", **{"from": "+12125550101"})
    body = body.get_json()
    assert (body["from"], body["fromReason"]) == ("+12125550101", "requested")
    assert "fromHealth" not in body


@pytest.mark.parametrize("body,field,code", [
    ({}, "to", "required"),
    ({"to": "4155551234"}, "to", "invalid-number"),
    ({"to": "+1415555123"}, "to", "invalid-number"),
    ({"to": "+14155551234", "from": "+1"}, "from", "invalid-number"),
    ({"to": "+14155551234", "from": "+13035550101"}, "from", "unknown-did"),
    ({"to": "+14155551234", "agent_id": "x"}, "agent_id", "unknown-field"),
])
def test_bad_input_names_the_field(client, tenant, agent, redis, body, field, code):
    dids(tenant, "+14155550101")
    r = place(client, tenant, agent, **body)
    assert problem(r) == (422, "invalid-request", [field])
    assert r.get_json()["error"]["details"][0]["code"] == code
    conforms(r, PATH, "post")
    assert Call.select().count() == 0 and not redis.exists(redis_schema.ORIGINATE_STREAM)


def test_a_suppressed_number_is_refused(client, tenant, agent, redis):
    dids(tenant, "+14155550101")
    dnc.suppress(tenant.id, "+14155551234", source="api", redis=redis)
    r = place(client, tenant, agent, to="+14155551234")
    assert r.status_code == 403
    err = r.get_json()["error"]
    assert err["code"] == "number-suppressed" and err["details"]["field"] == "to"
    conforms(r, PATH, "post")
    assert Call.select().count() == 0


def test_suppressed_even_without_a_did(client, tenant, agent, redis):
    dnc.suppress(tenant.id, "+14155551234", source="ivr", redis=redis)
    assert place(client, tenant, agent, to="+14155551234").status_code == 403


def test_no_did_to_call_from(client, tenant, agent):
    r = place(client, tenant, agent, to="+14155551234")
    assert problem(r) == (422, "invalid-request", ["from"])
    assert r.get_json()["error"]["details"][0]["code"] == "no-did"


def test_unknown_agent(client, tenant):
    r = client.post("/api/voice/agents/nope/call", json={"to": "+14155551234"},
                    headers=tenant.headers)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "agent-not-found"


def test_another_accounts_agent(client, tenant, other):
    theirs = create(client, other)
    dids(tenant, "+14155550101")
    assert place(client, tenant, theirs, to="+14155551234").status_code == 404


def test_another_accounts_did_is_never_picked(client, tenant, other, agent):
    dids(other, "+14155550101")
    dids(tenant, "+12125550101")
    body = place(client, tenant, agent, to="+14155551234").get_json()
    assert body["from"] == "+12125550101" and body["fromReason"] == "health-score"


def test_health_history_steers_the_choice(client, tenant, agent):
    dids(tenant, "+14155550101", "+14155550102")
    for _ in range(6):
        Call.create(account=tenant.id, direction="outbound", from_number="+14155550101",
                    to_number="+14155550000", status="failed")
    body = place(client, tenant, agent, to="+14155551234").get_json()
    assert (body["from"], body["fromReason"]) == ("+14155550102", "same-area-code")


def test_machine_detection_and_the_agents_own_drop(client, tenant, agent, config):
    """An agent call takes the AMD fields; an agent's voicemail_drop is left on machines
    its calls reach unless the request names another."""
    dids(tenant, "+14155550101")
    r = place(client, tenant, agent, to="+14155551234", machineDetection="Enable")
    assert r.status_code == 201, r.get_json()
    assert Call.get_by_id(r.get_json()["id"]).amd == {"mode": "Enable", "async": True}
    r = client.patch(f"/api/voice/agents/{agent['id']}", headers=tenant.headers,
                     json={"voicemail_drop": {"text": "Sorry we missed you.",
                                              "engine": "standard"}})
    assert r.status_code == 200, r.get_json()
    shown = client.get(f"/api/voice/agents/{agent['id']}", headers=tenant.headers).get_json()
    assert shown["voicemail_drop"] == {"text": "Sorry we missed you.", "engine": "standard"}
    r = place(client, tenant, agent, to="+14155551234")
    amd = Call.get_by_id(r.get_json()["id"]).amd
    assert amd["mode"] == "DetectMessageEnd" and amd["drop"]["text"] == "Sorry we missed you."
    r = place(client, tenant, agent, to="+14155551234",
              voicemailDrop={"text": "A different message.", "engine": "standard"})
    assert Call.get_by_id(r.get_json()["id"]).amd["drop"]["text"] == "A different message."


@pytest.mark.parametrize("drop,field", [
    (5, "voicemail_drop"), ({"text": ""}, "voicemail_drop.text"),
    ({"text": "hi", "x": 1}, "voicemail_drop.x")])
def test_an_agents_bad_drop_is_refused(client, tenant, agent, drop, field):
    r = client.patch(f"/api/voice/agents/{agent['id']}", headers=tenant.headers,
                     json={"voicemail_drop": drop})
    assert problem(r) == (422, "invalid-request", [field])
