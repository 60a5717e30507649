"""The request examples of the Agents seed page (curl, Python requests, JavaScript fetch under
node), run unchanged but for the host, key and agent id against trunx under a real gunicorn
with its shipped settings (admin_api/gunicorn_conf.py), whose Ultravox is the local fake."""
# ruff: noqa: E501  (the page's lines, verbatim)
from __future__ import annotations

import shutil

import pytest
import requests

from tests.api.test_seed_examples import adapt, api_server, run
from tests.fakes.fake_ultravox import FakeUltravox

KEY = "uv-seed-key"
EXAMPLE_AGENT_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"

CREATE_CURL = r'''curl -X POST https://api.trunx.io/api/voice/agents \
  -H "Authorization: Bearer tk_live_..." \
  -H "Content-Type: application/json" \
  -d '{
    "name": "Appointment Confirmer",
    "prompt": "You are a friendly dental office assistant confirming appointments. Verify the patient name, date, and time. If they need to reschedule, collect their preferred date.",
    "voice": "Mark",
    "first_message": "Hi, this is Sarah from Downtown Dental. I am calling to confirm your upcoming appointment.",
    "language": "en",
    "max_duration": 300
  }'
'''

CREATE_FETCH = r'''const res = await fetch("https://api.trunx.io/api/voice/agents", {
  method: "POST",
  headers: {
    "Authorization": "Bearer tk_live_...",
    "Content-Type": "application/json",
  },
  body: JSON.stringify({
    name: "Appointment Confirmer",
    prompt:
      "You are a friendly dental office assistant confirming appointments. Verify the patient name, date, and time. If they need to reschedule, collect their preferred date.",
    voice: "Mark",
    first_message:
      "Hi, this is Sarah from Downtown Dental. I am calling to confirm your upcoming appointment.",
    language: "en",
    max_duration: 300,
  }),
});
const data = await res.json();
'''

CREATE_PY = r'''import requests

res = requests.post(
    "https://api.trunx.io/api/voice/agents",
    headers={"Authorization": "Bearer tk_live_..."},
    json={
        "name": "Appointment Confirmer",
        "prompt": "You are a friendly dental office assistant confirming appointments. Verify the patient name, date, and time. If they need to reschedule, collect their preferred date.",
        "voice": "Mark",
        "first_message": "Hi, this is Sarah from Downtown Dental. I am calling to confirm your upcoming appointment.",
        "language": "en",
        "max_duration": 300,
    },
)
data = res.json()
'''

CALL_CURL = r'''curl -X POST https://api.trunx.io/api/voice/agents/a1b2c3d4-e5f6-7890-abcd-ef1234567890/call \
  -H "Authorization: Bearer tk_live_..." \
  -H "Content-Type: application/json" \
  -d '{
    "to": "+14155551234"
  }'
'''

CALL_FETCH = r'''const agentId = "a1b2c3d4-e5f6-7890-abcd-ef1234567890";
const res = await fetch(
  `https://api.trunx.io/api/voice/agents/${agentId}/call`,
  {
    method: "POST",
    headers: {
      "Authorization": "Bearer tk_live_...",
      "Content-Type": "application/json",
    },
    body: JSON.stringify({
      to: "+14155551234",
    }),
  }
);
const data = await res.json();
'''

CALL_PY = r'''import requests

agent_id = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
res = requests.post(
    f"https://api.trunx.io/api/voice/agents/{agent_id}/call",
    headers={"Authorization": "Bearer tk_live_..."},
    json={
        "to": "+14155551234",
    },
)
data = res.json()
'''

SNIPPETS = {"curl": (CREATE_CURL, CALL_CURL), "fetch": (CREATE_FETCH, CALL_FETCH),
            "python": (CREATE_PY, CALL_PY)}


@pytest.fixture(scope="module")
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake):
    with api_server(tmp_path_factory.mktemp("gunicorn-agents"), drop=("ULTRAVOX_API_KEY",),
                    ULTRAVOX_API_KEY=KEY, TRUNX_ULTRAVOX_BASE_URL=fake.base_url) as served:
        yield served


@pytest.fixture(params=["curl", "python", "fetch"])
def kind(request):
    if not shutil.which({"curl": "curl", "fetch": "node"}.get(request.param, "python3")):
        pytest.skip(f"{request.param} is not installed")
    return request.param


def test_agents_page(server, fake, kind, tmp_path):
    key = server.account(f"agents-{kind}")
    h = {"Authorization": f"Bearer {key}"}
    create, call = SNIPPETS[kind]
    (tmp_path / "greeting.mp3").write_bytes(b"")   # the shared fetch runner reads it

    status, made = run(kind, adapt(create, server, key), tmp_path)
    assert status == 201
    assert list(made) == ["id", "name", "ultravoxId"]
    assert made["name"] == "Appointment Confirmer" and made["ultravoxId"] in fake.agents

    got = requests.get(f"{server.base}/api/voice/agents/{made['id']}", headers=h,
                       timeout=10).json()
    assert got["voice"] == "Mark" and got["max_duration"] == 300
    assert got["ultravoxStatus"] == "active"
    listed = requests.get(f"{server.base}/api/voice/agents", headers=h, timeout=10).json()
    assert listed["count"] == 1 and listed["agents"][0]["id"] == made["id"]

    # the call example needs a number to call from: trunx's DIDs
    assert requests.post(f"{server.base}/api/dids", json={"number": f"+1415555{kind_n(kind)}"},
                         headers=h, timeout=10).status_code == 201
    status, placed = run(kind, adapt(call, server, key, **{EXAMPLE_AGENT_ID: made["id"]}),
                         tmp_path)
    assert status == 201, placed
    assert placed["status"] == "initiated" and placed["agentId"] == made["id"]
    assert placed["callId"].startswith("CA")
    assert placed["from"] == f"+1415555{kind_n(kind)}"
    assert placed["fromReason"] == "same-area-code"

    r = requests.delete(f"{server.base}/api/voice/agents/{made['id']}", headers=h, timeout=10)
    assert r.json() == {"deleted": True, "id": made["id"]}
    assert made["ultravoxId"] not in fake.agents


def kind_n(kind: str) -> str:
    # one DID per client run (a number belongs to one account)
    return {"curl": "0101", "python": "0102", "fetch": "0103"}[kind]
