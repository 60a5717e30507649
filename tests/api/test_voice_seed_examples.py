"""The request examples of the Voice seed page (curl, Python requests, JavaScript fetch under
node), run unchanged but for the host, key and call id, against trunx under a real gunicorn
with its shipped settings (admin_api/gunicorn_conf.py) and a real engine process
(`python -m agi_server`). No Asterisk here: the calls wait in the engine's queue, which is
what a DELETE then ends."""
# ruff: noqa: E501  (the page's lines, verbatim)
from __future__ import annotations

import shutil

import pytest
import requests

from devtools.stack import free_port
from tests.api.test_seed_examples import adapt, api_server, run

EXAMPLE_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"

PLAIN_CURL = r'''curl -X POST https://api.trunx.io/api/voice \
-H "Authorization: Bearer tk_live_..." \
-H "Content-Type: application/json" \
-d '{
"from": "+14155559876",
"to": "+14155551234"
}'
'''
PLAIN_FETCH = r'''const res = await fetch("https://api.trunx.io/api/voice", {
method: "POST",
headers: {
"Authorization": "Bearer tk_live_...",
"Content-Type": "application/json",
},
body: JSON.stringify({
from: "+14155559876",
to: "+14155551234",
}),
});
const data = await res.json();
'''
PLAIN_PY = r'''import requests
res = requests.post(
"https://api.trunx.io/api/voice",
headers={"Authorization": "Bearer tk_live_..."},
json={
"from": "+14155559876",
"to": "+14155551234",
},
)
data = res.json()
'''
AI_CURL = r'''curl -X POST https://api.trunx.io/api/voice \
-H "Authorization: Bearer tk_live_..." \
-H "Content-Type: application/json" \
-d '{
"from": "+14155559876",
"to": "+14155551234",
"systemPrompt": "You are calling to confirm a dental appointment for tomorrow at 2pm. Be friendly and professional.",
"voice": "Mark",
"firstSpeaker": "agent",
"temperature": 0.7,
"maxDuration": "300s"
}'
'''
AI_FETCH = r'''const res = await fetch("https://api.trunx.io/api/voice", {
method: "POST",
headers: {
"Authorization": "Bearer tk_live_...",
"Content-Type": "application/json",
},
body: JSON.stringify({
from: "+14155559876",
to: "+14155551234",
systemPrompt:
"You are calling to confirm a dental appointment for tomorrow at 2pm. Be friendly and professional.",
voice: "Mark",
firstSpeaker: "agent",
temperature: 0.7,
maxDuration: "300s",
}),
});
const data = await res.json();
'''
AI_PY = r'''import requests
res = requests.post(
"https://api.trunx.io/api/voice",
headers={"Authorization": "Bearer tk_live_..."},
json={
"from": "+14155559876",
"to": "+14155551234",
"systemPrompt": "You are calling to confirm a dental appointment for tomorrow at 2pm. Be friendly and professional.",
"voice": "Mark",
"firstSpeaker": "agent",
"temperature": 0.7,
"maxDuration": "300s",
},
)
data = res.json()
'''
GET_CURL = r'''curl "https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890" \
-H "Authorization: Bearer tk_live_..."
'''
GET_FETCH = r'''const res = await fetch(
"https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890",
{ headers: { "Authorization": "Bearer tk_live_..." } }
);
const data = await res.json();
'''
GET_PY = r'''import requests
res = requests.get(
"https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890",
headers={"Authorization": "Bearer tk_live_..."},
)
data = res.json()
'''
DELETE_CURL = r'''curl -X DELETE "https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890" \
-H "Authorization: Bearer tk_live_..."
'''
DELETE_FETCH = r'''const res = await fetch(
"https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890",
{
method: "DELETE",
headers: { "Authorization": "Bearer tk_live_..." },
}
);
const data = await res.json();
'''
DELETE_PY = r'''import requests
res = requests.delete(
"https://api.trunx.io/api/voice/a1b2c3d4-e5f6-7890-abcd-ef1234567890",
headers={"Authorization": "Bearer tk_live_..."},
)
data = res.json()
'''
SNIPPETS = {"curl": (PLAIN_CURL, AI_CURL, GET_CURL, DELETE_CURL),
            "python": (PLAIN_PY, AI_PY, GET_PY, DELETE_PY),
            "fetch": (PLAIN_FETCH, AI_FETCH, GET_FETCH, DELETE_FETCH)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # an Ultravox key makes AI calls acceptable; no Asterisk listens on the AMI port, so
    # the engine keeps every call queued
    with api_server(tmp_path_factory.mktemp("gunicorn-voice"), drop=("ULTRAVOX_API_KEY",),
                    engine=True, ULTRAVOX_API_KEY="uv-seed-key",
                    TRUNX_AGI_PORT=str(free_port()), TRUNX_AMI_PORT=str(free_port())) as served:
        key = served.account("voice-seed")
        assert requests.post(f"{served.base}/api/dids", json={"number": "+14155559876"},
                             headers={"Authorization": f"Bearer {key}"},
                             timeout=10).status_code == 201
        yield served, key


@pytest.fixture(params=["curl", "python", "fetch"])
def kind(request):
    if not shutil.which({"curl": "curl", "fetch": "node"}.get(request.param, "python3")):
        pytest.skip(f"{request.param} is not installed")
    return request.param


def test_voice_page(server, kind, tmp_path):
    server, key = server
    plain, ai, get, delete = SNIPPETS[kind]
    (tmp_path / "greeting.mp3").write_bytes(b"")   # the shared fetch runner reads it

    status, placed = run(kind, adapt(plain, server, key), tmp_path)
    assert status == 201 and list(placed) == ["id", "callId", "status"]
    assert placed["status"] == "initiated" and placed["callId"].startswith("CA")

    status, got = run(kind, adapt(get, server, key, **{EXAMPLE_ID: placed["id"]}), tmp_path)
    assert status == 200
    assert {k: got[k] for k in ("id", "from", "to", "status", "provider", "direction")} == {
        "id": placed["id"], "from": "+14155559876", "to": "+14155551234",
        "status": "initiated", "provider": "asterisk", "direction": "outbound"}
    assert got["createdAt"].endswith("Z") and got["queuePosition"] >= 1

    status, ai_call = run(kind, adapt(ai, server, key), tmp_path)
    assert status == 201 and ai_call["status"] == "initiated"
    status, got = run(kind, adapt(get, server, key, **{EXAMPLE_ID: ai_call["id"]}), tmp_path)
    assert got["provider"] == "ultravox" and got["ai"]["status"] == "pending"

    for call in (placed, ai_call):
        status, ended = run(kind, adapt(delete, server, key, **{EXAMPLE_ID: call["id"]}),
                            tmp_path)
        assert (status, ended) == (200, {"ended": True})
        status, got = run(kind, adapt(get, server, key, **{EXAMPLE_ID: call["id"]}), tmp_path)
        assert (got["status"], got["endReason"], got["duration"]) == ("failed", "api", 0)

    status, missing = run(kind, adapt(get, server, key), tmp_path)
    assert status == 404 and missing["error"]["code"] == "call-not-found"
    status, missing = run(kind, adapt(delete, server, key), tmp_path)
    assert status == 404
