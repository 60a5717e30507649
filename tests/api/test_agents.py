"""Agents API (seed 003) against the local Ultravox fake: CRUD mirrored to Ultravox, nothing
half-written when Ultravox fails, GET answering from SQLite when Ultravox can't be asked."""
from __future__ import annotations

import re

import pytest

from admin_api.openapi import DOCUMENT
from devtools.stack import free_port
from tests.api.test_openapi import conforms
from tests.fakes.fake_ultravox import FakeUltravox
from trunx.models import Agent

KEY = "uv-test-key"
SEED_AGENT = {
    "name": "Appointment Confirmer",
    "prompt": "You are a friendly dental office assistant confirming appointments. Verify the "
              "patient name, date, and time. If they need to reschedule, collect their "
              "preferred date.",
    "voice": "Mark",
    "first_message": "Hi, this is Sarah from Downtown Dental. I am calling to confirm your "
                     "upcoming appointment.",
    "language": "en",
    "max_duration": 300,
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def config(config, fake):
    return config.replace(ultravox_api_key=KEY, ultravox_base_url=fake.base_url)


TOOL = "3c90c3cc-0d44-4b50-8888-8dd25736052a"   # an Ultravox tool id


def create(client, tenant, **overrides):
    r = client.post("/api/voice/agents", json={**SEED_AGENT, **overrides},
                    headers=tenant.headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def problem(r) -> tuple:
    body = r.get_json()["error"]
    return r.status_code, body["code"], [d["field"] for d in body["details"]]


# -- the seed's shapes ------------------------------------------------------------------------

def test_create_answers_the_seed_shape_and_makes_the_ultravox_agent(client, tenant, fake):
    made = create(client, tenant)
    assert list(made) == ["id", "name", "ultravoxId"]
    assert UUID.match(made["id"]) and made["name"] == "Appointment Confirmer"
    remote = fake.agents[made["ultravoxId"]]
    assert remote["name"] == f"Appointment_Confirmer-{made['id'][:8]}"
    template = remote["callTemplate"]
    assert template["systemPrompt"] == SEED_AGENT["prompt"]
    assert template["voice"] == "Mark" and template["languageHint"] == "en"
    assert template["maxDuration"] == "300s"
    assert template["firstSpeakerSettings"] == {"agent": {"text": SEED_AGENT["first_message"]}}
    assert fake.last("POST", "/api/agents")["headers"]["X-API-Key"] == KEY


def test_get_shows_every_field_and_the_live_status(client, tenant):
    made = create(client, tenant, tool_ids=[TOOL, "hangUp"], knowledge_ids=["kb-1"])
    r = client.get(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert r.status_code == 200
    got = r.get_json()
    seed_keys = ["id", "name", "ultravoxId", "prompt", "voice", "first_message", "language",
                 "max_duration", "tool_ids", "knowledge_ids", "createdAt"]
    assert [k for k in got if k in seed_keys] == seed_keys
    assert {k: got[k] for k in SEED_AGENT} == SEED_AGENT
    assert got["tool_ids"] == [TOOL, "hangUp"] and got["knowledge_ids"] == ["kb-1"]
    assert got["max_duration"] == 300 and isinstance(got["max_duration"], int)
    assert TS.match(got["createdAt"]) and got["ultravoxStatus"] == "active"
    conforms(r, "/api/voice/agents/{agent_id}", "get")


def test_defaults(client, tenant, fake):
    made = create(client, tenant, voice=None, first_message=None, language=None,
                  max_duration=None)
    got = client.get(f"/api/voice/agents/{made['id']}", headers=tenant.headers).get_json()
    assert (got["voice"], got["first_message"], got["language"], got["max_duration"]) == (
        None, None, "en", 300)
    minimal = client.post("/api/voice/agents", json={"name": "n", "prompt": "p"},
                          headers=tenant.headers).get_json()
    template = fake.agents[minimal["ultravoxId"]]["callTemplate"]
    assert "voice" not in template and template["firstSpeakerSettings"] == {"agent": {}}


def test_list_newest_first_with_limit(client, tenant):
    ids = [create(client, tenant, name=f"agent {i}")["id"] for i in range(3)]
    r = client.get("/api/voice/agents", headers=tenant.headers)
    body = r.get_json()
    assert body["count"] == 3 and [a["id"] for a in body["agents"]] == ids[::-1]
    assert list(body["agents"][0]) == ["id", "name", "ultravoxId", "createdAt"]
    conforms(r, "/api/voice/agents", "get")
    limited = client.get("/api/voice/agents?limit=2", headers=tenant.headers).get_json()
    assert limited["count"] == 2 and [a["id"] for a in limited["agents"]] == ids[:0:-1]


def test_list_default_limit_is_50(client, tenant):
    for i in range(51):
        Agent.create(account=tenant.id, name=f"a{i}", prompt="p", ultravox_id=f"uv{i}")
    assert client.get("/api/voice/agents", headers=tenant.headers).get_json()["count"] == 50


@pytest.mark.parametrize("limit", ["0", "abc", "501", "-1", "2.5"])
def test_bad_limit_names_the_parameter(client, tenant, limit):
    r = client.get(f"/api/voice/agents?limit={limit}", headers=tenant.headers)
    assert problem(r) == (422, "invalid-request", ["limit"])


def test_patch_changes_only_what_was_sent_here_and_at_ultravox(client, tenant, fake):
    made = create(client, tenant, tool_ids=["coldTransfer"])
    r = client.patch(f"/api/voice/agents/{made['id']}", headers=tenant.headers,
                     json={"prompt": "New prompt.", "max_duration": 120, "voice": None})
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["prompt"] == "New prompt." and got["max_duration"] == 120
    assert got["voice"] is None and got["name"] == SEED_AGENT["name"]
    assert got["tool_ids"] == ["coldTransfer"]
    assert got["first_message"] == SEED_AGENT["first_message"]
    assert got["updatedAt"] >= got["createdAt"]
    conforms(r, "/api/voice/agents/{agent_id}", "patch")
    template = fake.agents[made["ultravoxId"]]["callTemplate"]
    assert template["systemPrompt"] == "New prompt." and template["maxDuration"] == "120s"
    assert "voice" not in template and template["selectedTools"] == [{"toolName": "coldTransfer"}]
    again = client.get(f"/api/voice/agents/{made['id']}", headers=tenant.headers).get_json()
    assert again["prompt"] == "New prompt."


def test_delete_removes_both(client, tenant, fake):
    made = create(client, tenant)
    r = client.delete(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert r.get_json() == {"deleted": True, "id": made["id"]}
    conforms(r, "/api/voice/agents/{agent_id}", "delete")
    assert made["ultravoxId"] not in fake.agents
    assert client.get(f"/api/voice/agents/{made['id']}",
                      headers=tenant.headers).status_code == 404


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_and_other_accounts_agents_are_404(client, tenant, other, method):
    made = create(client, other)
    for agent_id in (made["id"], "no-such-agent"):
        kw = {"json": {"name": "x"}} if method == "patch" else {}
        r = getattr(client, method)(f"/api/voice/agents/{agent_id}", headers=tenant.headers,
                                    **kw)
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "agent-not-found"


# -- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({"prompt": "p"}, "name"),
    ({"name": "n"}, "prompt"),
    ({"name": "  ", "prompt": "p"}, "name"),
    ({"name": "n", "prompt": 7}, "prompt"),
    ({"name": "x" * 201, "prompt": "p"}, "name"),
    ({"name": "n", "prompt": "p", "voice": 3}, "voice"),
    ({"name": "n", "prompt": "p", "first_message": ["hi"]}, "first_message"),
    ({"name": "n", "prompt": "p", "language": "english please"}, "language"),
    ({"name": "n", "prompt": "p", "max_duration": "300"}, "max_duration"),
    ({"name": "n", "prompt": "p", "max_duration": 0}, "max_duration"),
    ({"name": "n", "prompt": "p", "max_duration": True}, "max_duration"),
    ({"name": "n", "prompt": "p", "tool_ids": "t1"}, "tool_ids"),
    ({"name": "n", "prompt": "p", "tool_ids": ["hangUp", "bad id"]}, "tool_ids[1]"),
    ({"name": "n", "prompt": "p", "tool_ids": ["tool-1"]}, "tool_ids[0]"),      # not a UUID
    ({"name": "n", "prompt": "p", "tool_ids": ["hangup"]}, "tool_ids[0]"),      # not a built-in
    ({"name": "n", "prompt": "Hi {{customer}}"}, "prompt"),   # a variable trunx never fills
    ({"name": "n", "prompt": "p", "first_message": "{{ x }}"}, "first_message"),
    ({"name": "n", "prompt": "p", "knowledge_ids": ["a", "a"]}, "knowledge_ids"),
    ({"name": "n", "prompt": "p", "systemPrompt": "x"}, "systemPrompt"),
])
def test_bad_input_is_422_naming_the_field_and_reaches_nobody(client, tenant, fake, body,
                                                              field):
    r = client.post("/api/voice/agents", json=body, headers=tenant.headers)
    assert problem(r) == (422, "invalid-request", [field])
    conforms(r, "/api/voice/agents", "post")
    assert fake.count("POST") == 0 and Agent.select().count() == 0


def test_patch_validates_too(client, tenant, fake):
    made = create(client, tenant)
    for body, field in (({"name": None}, "name"), ({"max_duration": -5}, "max_duration")):
        r = client.patch(f"/api/voice/agents/{made['id']}", json=body, headers=tenant.headers)
        assert problem(r) == (422, "invalid-request", [field])
    assert fake.count("PATCH") == 0


def test_not_json(client, tenant):
    r = client.post("/api/voice/agents", data="name=x", headers=tenant.headers)
    assert r.status_code == 415


# -- Ultravox failing -------------------------------------------------------------------------

@pytest.mark.parametrize("status,code,ours", [
    (500, "ultravox-error", 502), (429, "ultravox-rate-limited", 503),
    (400, "ultravox-rejected", 422), (401, "ultravox-unauthorized", 502),
])
def test_a_remote_failure_on_create_leaves_no_row(client, tenant, fake, status, code, ours):
    fake.fail("POST", "/api/agents", status, {"detail": "nope"})
    r = client.post("/api/voice/agents", json=SEED_AGENT, headers=tenant.headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (ours, code)
    assert r.get_json()["error"]["details"]["remoteStatus"] == status
    assert Agent.select().count() == 0


def test_ultravox_rejecting_a_voice_says_so(client, tenant):
    r = client.post("/api/voice/agents", json={**SEED_AGENT, "voice": "Nobody"},
                    headers=tenant.headers)
    assert r.status_code == 422 and "Nobody" in r.get_json()["error"]["message"]
    assert Agent.select().count() == 0


def test_a_wrong_key_is_named_but_never_shown(make_app, config, tenant):
    app = make_app(config.replace(ultravox_api_key="wrong-key-123"))
    r = app.test_client().post("/api/voice/agents", json=SEED_AGENT, headers=tenant.headers)
    assert r.status_code == 502
    err = r.get_json()["error"]
    assert err["code"] == "ultravox-unauthorized" and "ULTRAVOX_API_KEY" in err["message"]
    assert "wrong-key-123" not in r.get_data(as_text=True)


def test_a_failed_update_keeps_the_old_row(client, tenant, fake):
    made = create(client, tenant)
    fake.fail("PATCH", "/api/agents", 503)
    r = client.patch(f"/api/voice/agents/{made['id']}", json={"prompt": "changed"},
                     headers=tenant.headers)
    assert r.status_code == 502
    assert Agent.get_by_id(made["id"]).prompt == SEED_AGENT["prompt"]


def test_a_failed_remote_delete_keeps_the_row(client, tenant, fake):
    made = create(client, tenant)
    fake.fail("DELETE", "/api/agents", 500)
    r = client.delete(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "ultravox-error"
    assert Agent.get_or_none(Agent.id == made["id"]) is not None
    assert made["ultravoxId"] in fake.agents


def test_delete_when_ultravox_already_forgot_the_agent(client, tenant, fake):
    made = create(client, tenant)
    del fake.agents[made["ultravoxId"]]
    r = client.delete(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert r.status_code == 200 and Agent.get_or_none(Agent.id == made["id"]) is None


def test_get_when_ultravox_is_unreachable_answers_from_sqlite(make_app, config, client,
                                                              tenant):
    made = create(client, tenant)
    down = make_app(config.replace(ultravox_base_url=f"http://127.0.0.1:{free_port()}"))
    r = down.test_client().get(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert r.status_code == 200
    got = r.get_json()
    assert got["prompt"] == SEED_AGENT["prompt"] and got["ultravoxStatus"] == "unreachable"
    assert got["ultravoxError"]["code"] == "ultravox-unreachable"


def test_get_when_ultravox_lost_the_agent_then_patch_recreates_it(client, tenant, fake):
    made = create(client, tenant)
    del fake.agents[made["ultravoxId"]]
    got = client.get(f"/api/voice/agents/{made['id']}", headers=tenant.headers).get_json()
    assert got["ultravoxStatus"] == "missing"
    r = client.patch(f"/api/voice/agents/{made['id']}", json={"voice": "Jessica"},
                     headers=tenant.headers)
    assert r.status_code == 200
    new_id = r.get_json()["ultravoxId"]
    assert new_id != made["ultravoxId"] and fake.agents[new_id]["callTemplate"]["voice"] == \
        "Jessica"
    assert client.get(f"/api/voice/agents/{made['id']}",
                      headers=tenant.headers).get_json()["ultravoxStatus"] == "active"


# -- no Ultravox key --------------------------------------------------------------------------

def test_without_a_key_writes_are_503_naming_the_setting(make_app, config, client, tenant,
                                                         fake):
    made = create(client, tenant)
    bare = make_app(config.replace(ultravox_api_key="")).test_client()
    h = tenant.headers
    for r in (bare.post("/api/voice/agents", json=SEED_AGENT, headers=h),
              bare.patch(f"/api/voice/agents/{made['id']}", json={"prompt": "x"}, headers=h),
              bare.delete(f"/api/voice/agents/{made['id']}", headers=h),
              bare.post(f"/api/voice/agents/{made['id']}/call", json={"to": "+14155551234"},
                        headers=h)):
        assert r.status_code == 503, r.get_json()
        err = r.get_json()["error"]
        assert err["code"] == "ultravox-not-configured"
        assert err["details"] == {"setting": "ULTRAVOX_API_KEY"}
        assert "ULTRAVOX_API_KEY" in err["message"]
    assert Agent.select().count() == 1 and Agent.get_by_id(made["id"]).prompt != "x"
    # reads still answer, from SQLite
    got = bare.get(f"/api/voice/agents/{made['id']}", headers=h).get_json()
    assert got["ultravoxStatus"] == "not-configured"
    assert bare.get("/api/voice/agents", headers=h).get_json()["count"] == 1


def test_every_agents_route_is_documented():
    paths = {p for p in DOCUMENT["paths"] if p.startswith("/api/voice/agents")}
    assert paths == {"/api/voice/agents", "/api/voice/agents/{agent_id}",
                     "/api/voice/agents/{agent_id}/call"}


# -- where the agent's coldTransfer may send the caller -------------------------------------

def test_transfers_become_cold_transfer_targets_at_ultravox(client, tenant, fake):
    from tests.api.conftest import SEED_TREE

    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    made = create(client, tenant, tool_ids=["hangUp", "coldTransfer"],
                  transfers=["+14155550100", "ivr:qualify-business#has_business"])
    template = fake.agents[made["ultravoxId"]]["callTemplate"]
    assert [(t.get("toolName"), t.get("nameOverride"), t.get("parameterOverrides"))
            for t in template["selectedTools"]] == [
        ("hangUp", None, None),
        ("coldTransfer", "coldTransfer1", {"target": "+14155550100"}),
        ("coldTransfer", "coldTransfer2", {"target": "ivr~qualify-business~has_business"})]
    got = client.get(f"/api/voice/agents/{made['id']}", headers=tenant.headers)
    assert got.get_json()["transfers"] == ["+14155550100", "ivr:qualify-business#has_business"]
    conforms(got, "/api/voice/agents/{agent_id}", "get")
    r = client.patch(f"/api/voice/agents/{made['id']}", json={"transfers": None},
                     headers=tenant.headers)
    assert r.get_json()["transfers"] == []
    assert fake.agents[made["ultravoxId"]]["callTemplate"]["selectedTools"] == [
        {"toolName": "hangUp"}, {"toolName": "coldTransfer"}]


@pytest.mark.parametrize(("transfers", "field", "code"), [
    (["ivr:nope#menu"], "transfers[0]", "unknown-ivr"),
    (["ivr:theirs#has_business"], "transfers[0]", "unknown-ivr"),   # another account's
    (["+14155550100", "ivr:qualify-business#nope"], "transfers[1]", "unknown-node"),
    (["sales desk"], "transfers[0]", "invalid-transfer-target"),
    (["ivr:qualify-business"], "transfers[0]", "invalid-transfer-target"),
    ("+14155550100", "transfers", "invalid-type"),
    (["+14155550100", "+14155550100"], "transfers", "duplicate"),
])
def test_bad_transfers_are_refused_naming_the_entry(client, tenant, other, fake, transfers,
                                                    field, code):
    from tests.api.conftest import SEED_TREE

    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    # another account's IVR is no target of this one's agents
    assert client.post("/ivr", json={**SEED_TREE, "id": "theirs"},
                       headers=other.headers).status_code == 201
    r = client.post("/api/voice/agents", json={**SEED_AGENT, "transfers": transfers},
                    headers=tenant.headers)
    assert r.status_code == 422
    (detail,) = r.get_json()["error"]["details"]
    assert (detail["field"], detail["code"]) == (field, code)
    assert fake.agents == {} and Agent.select().count() == 0
