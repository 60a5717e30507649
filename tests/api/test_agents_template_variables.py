"""`{{...}}` in an agent's prompt or first message, and in a call's systemPrompt: Ultravox
template variables, accepted when trunx fills them from the call (the outgoing flow's
templateContext, docs/ai.md) and refused with a 422 naming the field and the variable
otherwise, before anything reaches Ultravox or the call queue."""
from __future__ import annotations

import pytest

from tests.api.test_agents import SEED_AGENT, problem
from tests.api.test_voice_api import FROM, TO
from tests.fakes.fake_ultravox import FakeUltravox
from trunx import redis_schema
from trunx.models import Agent, Call
from trunx.ultravox_tools import TEMPLATE_VARIABLES

KEY = "uv-test-key"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def config(config, fake):
    return config.replace(ultravox_api_key=KEY, ultravox_base_url=fake.base_url)


@pytest.fixture
def did(client, tenant):
    assert client.post("/api/dids", json={"number": FROM},
                       headers=tenant.headers).status_code == 201


def test_every_supplied_variable_is_accepted_and_kept_for_ultravox(client, tenant, fake):
    prompt = "The caller pressed {{keys}} in {{ivr}} ({{ nodes }}), " + \
        " ".join(f"{{{{{v}}}}}" for v in TEMPLATE_VARIABLES)
    r = client.post("/api/voice/agents", headers=tenant.headers,
                    json={**SEED_AGENT, "prompt": prompt, "first_message": "Hi {{caller}}"})
    assert r.status_code == 201, r.get_json()
    remote = fake.agents[r.get_json()["ultravoxId"]]["callTemplate"]
    assert remote["systemPrompt"] == prompt      # Ultravox fills them per call
    assert remote["firstSpeakerSettings"] == {"agent": {"text": "Hi {{caller}}"}}


@pytest.mark.parametrize("field,body", [
    ("prompt", {"prompt": "Hello {{keys}} and {{customer_name}}"}),
    ("first_message", {"first_message": "Hi {{ account.tier }}"}),
])
def test_an_unknown_variable_is_422_naming_field_and_variable(client, tenant, fake, field,
                                                              body):
    r = client.post("/api/voice/agents", json={**SEED_AGENT, **body}, headers=tenant.headers)
    assert problem(r) == (422, "invalid-request", [field])
    (detail,) = r.get_json()["error"]["details"]
    assert detail["code"] == "unknown-template-variable"
    unknown = "customer_name" if field == "prompt" else "account.tier"
    assert f"{{{{{unknown}}}}}" in detail["message"] and "keys" in detail["message"]
    assert fake.count("POST") == 0 and Agent.select().count() == 0


def test_patching_in_an_unknown_variable_is_refused(client, tenant, fake):
    made = client.post("/api/voice/agents", json=SEED_AGENT, headers=tenant.headers).get_json()
    r = client.patch(f"/api/voice/agents/{made['id']}", json={"prompt": "{{did}} {{nope}}"},
                     headers=tenant.headers)
    assert problem(r) == (422, "invalid-request", ["prompt"])
    assert fake.count("PATCH") == 0
    assert Agent.get_by_id(made["id"]).prompt == SEED_AGENT["prompt"]


def test_a_plain_call_prompt_with_supplied_variables_is_queued(client, tenant, did, redis):
    r = client.post("/api/voice", headers=tenant.headers,
                    json={"from": FROM, "to": TO,
                          "systemPrompt": "You called {{to}} from {{from}}"})
    assert r.status_code == 201, r.get_json()
    assert Call.get_by_id(r.get_json()["id"]).ai["systemPrompt"].endswith("{{from}}")
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1


def test_a_plain_call_prompt_with_an_unknown_variable_queues_nothing(client, tenant, did,
                                                                    redis):
    r = client.post("/api/voice", headers=tenant.headers,
                    json={"from": FROM, "to": TO, "systemPrompt": "Hi {{first_name}}"})
    assert r.status_code == 422
    (detail,) = r.get_json()["error"]["details"]
    assert (detail["field"], detail["code"]) == ("systemPrompt", "unknown-template-variable")
    assert Call.select().count() == 0 and redis.xlen(redis_schema.ORIGINATE_STREAM) == 0
