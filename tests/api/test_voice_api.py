"""POST/GET/DELETE /api/voice (seed 002) through the Flask app: validation naming the field,
the DNC refusal, the AI-call preconditions, the seed's response shapes, queue position."""
from __future__ import annotations

import pytest

from admin_api.voice import service as voice_service
from tests.api.conftest import state
from tests.api.test_openapi import conforms
from trunx import dnc, redis_schema
from trunx.models import Call
from trunx.url_policy import MAX_URL

FROM, TO = "+14155559876", "+14155551234"


@pytest.fixture
def did(client, tenant):
    assert client.post("/api/dids", json={"number": FROM},
                       headers=tenant.headers).status_code == 201
    return FROM


def post(client, tenant, **body):
    return client.post("/api/voice", json={"from": FROM, "to": TO, **body},
                       headers=tenant.headers)


def test_plain_call_answers_like_the_seed(client, tenant, did, redis):
    r = post(client, tenant)
    assert r.status_code == 201
    body = r.get_json()
    assert list(body) == ["id", "callId", "status"]
    assert body["status"] == "initiated" and body["callId"].startswith("CA")
    assert len(body["callId"]) == 34 and int(body["callId"][2:], 16) >= 0
    conforms(r, "/api/voice", "post")
    row = Call.get_by_id(body["id"])
    assert (row.direction, row.provider, row.call_sid) == ("outbound", "asterisk",
                                                           body["callId"])
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1


def test_get_shows_the_seed_fields_and_the_queue(client, tenant, did):
    first = post(client, tenant).get_json()["id"]
    second = post(client, tenant, metadata={"crm": "42"}).get_json()["id"]
    r = client.get(f"/api/voice/{second}", headers=tenant.headers)
    body = r.get_json()
    assert list(body)[:8] == ["id", "from", "to", "status", "provider", "direction",
                              "duration", "createdAt"]
    assert (body["from"], body["to"], body["status"]) == (FROM, TO, "initiated")
    assert body["duration"] is None and body["queuePosition"] == 2 and body["queuedAt"]
    assert body["metadata"] == {"crm": "42"} and "ai" not in body
    conforms(r, "/api/voice/{call_id}", "get")
    assert client.get(f"/api/voice/{first}", headers=tenant.headers).get_json()[
        "queuePosition"] == 1


def test_finished_call_shows_duration_as_whole_seconds(client, tenant, did):
    call_id = post(client, tenant).get_json()["id"]
    Call.update(status="completed", duration=44.6, end_reason="callee-hangup").where(
        Call.id == call_id).execute()
    body = client.get(f"/api/voice/{call_id}", headers=tenant.headers).get_json()
    assert (body["status"], body["duration"], body["endReason"]) == ("completed", 45,
                                                                    "callee-hangup")
    assert "queuePosition" not in body
    # an ended call: DELETE says so at once
    r = client.delete(f"/api/voice/{call_id}", headers=tenant.headers)
    assert (r.status_code, r.get_json()) == (200, {"ended": True})


def test_unknown_and_other_accounts_calls_are_404(client, tenant, other, did):
    call_id = post(client, tenant).get_json()["id"]
    for method in ("get", "delete"):
        for headers, cid in ((tenant.headers, "a1b2c3d4-e5f6-7890-abcd-ef1234567890"),
                             (other.headers, call_id)):
            r = getattr(client, method)(f"/api/voice/{cid}", headers=headers)
            assert r.status_code == 404 and r.get_json()["error"]["code"] == "call-not-found"


@pytest.mark.parametrize("body, field, code", [
    ({"from": "+1415555987"}, "from", "invalid-number"),
    ({"to": 14155551234}, "to", "invalid-number"),
    ({"from": "+14155550000"}, "from", "unknown-did"),
    ({"metadata": {"n": 5}}, "metadata.n", "invalid-type"),
    ({"metadata": ["a"]}, "metadata", "invalid-type"),
    ({"maxDuration": 300}, None, None),                     # a number of seconds is fine
    ({"maxDuration": "5m"}, "maxDuration", "invalid-duration"),
    ({"webhookUrl": "javascript:alert(1)"}, "webhookUrl", "invalid-url"),
    ({"systemPrompt": ""}, "systemPrompt", "invalid-type"),
    ({"systemPrompt": "x", "temperature": -0.1}, "temperature", "out-of-range"),
    ({"systemPrompt": "x", "temperature": True}, "temperature", "out-of-range"),
    ({"systemPrompt": "x", "firstSpeaker": "nobody"}, "firstSpeaker", "invalid-value"),
    ({"systemPrompt": "x", "tools": {"a": 1}}, "tools", "invalid-type"),
    ({"systemPrompt": "x", "tools": [{"modelToolName": "ok", "description": "d",
                                      "http": {"baseUrlPattern": "https://x/y",
                                               "httpMethod": "FETCH"}}]},
     "tools[0].http.httpMethod", "invalid-value"),
    ({"systemPrompt": "x", "tools": [{"modelToolName": "ok", "description": "d", "x": 1}]},
     "tools[0].x", "unknown-field"),
    # Ultravox refuses an inline tool with no implementation (after the callee answered)
    ({"systemPrompt": "x", "tools": [{"modelToolName": "ok", "description": "d"}]},
     "tools[0].http", "required"),
    ({"systemPrompt": "x", "tools": [{"modelToolName": "ok", "description": "d",
                                      "http": {"httpMethod": "GET"}}]},
     "tools[0].http.baseUrlPattern", "required"),
    ({"systemPrompt": "x", "metadata": {"ultravox.sip": "x"}}, "metadata.ultravox.sip",
     "reserved-key"),
    ({"systemPrompt": "Hello {{customer}}"}, "systemPrompt", "unknown-template-variable"),
    ({"voice": "Mark"}, "voice", "requires-system-prompt"),
    ({"agent_id": "a"}, "agent_id", "unknown-field"),
])
def test_bad_fields_are_named_and_nothing_is_left(client, tenant, did, config, redis, body,
                                                  field, code):
    before = state(config, redis)
    r = post(client, tenant, **body)
    if field is None:
        assert r.status_code == 201
        return
    assert r.status_code == 422, r.get_json()
    (problem,) = r.get_json()["error"]["details"]
    assert (problem["field"], problem["code"]) == (field, code)
    assert state(config, redis) == before


def test_suppressed_number_is_403(client, tenant, did, redis, config):
    dnc.suppress(tenant.id, TO, source="api", redis=redis)
    before = state(config, redis)
    r = post(client, tenant)
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "number-suppressed"
    assert r.get_json()["error"]["details"]["field"] == "to"
    assert state(config, redis) == before


def test_ai_call_without_a_key_is_503_naming_the_setting(client, tenant, did):
    r = post(client, tenant, systemPrompt="Confirm the appointment.", voice="Mark")
    assert r.status_code == 503
    error = r.get_json()["error"]
    assert error["code"] == "ultravox-not-configured"
    assert error["details"]["setting"] == "ULTRAVOX_API_KEY"
    assert "ULTRAVOX_API_KEY" in error["message"]


def test_ai_call_with_a_key_stores_its_config(make_app, config, tenant, did, redis):
    client = make_app(config.replace(ultravox_api_key="uv-test")).test_client()
    r = post(client, tenant, systemPrompt="Confirm the appointment.", voice="Mark",
             firstSpeaker="agent", temperature=0.7, maxDuration="300s",
             tools=[{"modelToolName": "lookup", "description": "find the booking",
                     "http": {"baseUrlPattern": "https://crm.example/api",
                              "httpMethod": "GET"}}])
    assert r.status_code == 201, r.get_json()
    row = Call.get_by_id(r.get_json()["id"])
    assert row.provider == "ultravox" and row.max_duration == 300
    assert row.ai["systemPrompt"] == "Confirm the appointment." and row.ai["voice"] == "Mark"
    body = client.get(f"/api/voice/{row.id}", headers=tenant.headers).get_json()
    assert body["ai"] == {"status": "pending", "transcript": None, "duration": None,
                          "endReason": None}


def test_delete_queues_a_hangup_for_the_engine(app, client, tenant, did, redis):
    app.config["VOICE_HANGUP_WAIT"] = 0.2     # no engine runs in these tests
    call_id = post(client, tenant).get_json()["id"]
    r = client.delete(f"/api/voice/{call_id}", headers=tenant.headers)
    assert (r.status_code, r.get_json()) == (202, {"ended": False, "pending": True})
    conforms(r, "/api/voice/{call_id}", "delete")
    (entry,) = redis.xrange(redis_schema.COMMAND_STREAM)
    assert entry[1] == {"call": call_id, "action": "hangup"}
    assert voice_service.get_owned(tenant.id, call_id).status == "initiated"


def test_suppressed_number_is_403_on_the_ai_path_too(make_app, config, tenant, did, redis):
    client = make_app(config.replace(ultravox_api_key="uv-test")).test_client()
    dnc.suppress(tenant.id, TO, source="api", redis=redis)
    before = state(config, redis)
    r = post(client, tenant, systemPrompt="Confirm the appointment.", voice="Mark")
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "number-suppressed"
    assert state(config, redis) == before


def test_the_longest_webhook_url_accepted_is_stored_whole(client, tenant, did):
    """PostgreSQL enforces a VARCHAR's length where SQLite never did: a URL as long as the
    API accepts (url_policy.MAX_URL) is stored, not a 500."""
    base = "https://hooks.example.com/"
    url = base + "a" * (MAX_URL - len(base))
    r = post(client, tenant, webhookUrl=url)
    assert r.status_code == 201, r.get_json()
    assert Call.get_by_id(r.get_json()["id"]).webhook_url == url
