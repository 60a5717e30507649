"""The request examples of the Voice seed page (curl, Python requests, JavaScript fetch under
node), run unchanged but for the host, key and call id, against trunx under a real gunicorn
with its shipped settings (admin_api/gunicorn_conf.py) and a real engine process
(`python -m agi_server`). No Asterisk here: the calls wait in the engine's queue, which is
what a DELETE then ends."""
# ruff: noqa: E501  (the page's lines, verbatim)
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import requests

from tests.api.test_seed_examples import REPO, Server, _wait_up, adapt, run
from trunx.devstack import RedisServer, free_port

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
    root = tmp_path_factory.mktemp("gunicorn-voice")
    redis = RedisServer(root / "redis").start()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRUNX_") and k not in ("ELEVENLABS_API_KEY", "ULTRAVOX_API_KEY")}
    # an Ultravox key makes AI calls acceptable; no Asterisk listens on the AMI port, so
    # the engine keeps every call queued
    env.update(TRUNX_DATA_DIR=str(root / "data"), TRUNX_REDIS_URL=redis.url,
               ULTRAVOX_API_KEY="uv-seed-key", TRUNX_AGI_PORT=str(free_port()),
               TRUNX_AMI_PORT=str(free_port()))
    port = free_port()
    procs = []
    with open(root / "gunicorn.log", "wb") as log, open(root / "engine.log", "wb") as elog:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf",
             "--bind", f"127.0.0.1:{port}", "--no-control-socket", "admin_api.wsgi:app"],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "agi_server"], env=env, cwd=REPO, stdout=elog,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(procs[0], base, root / "gunicorn.log")
        server = Server(base, env, root / "data")
        key = server.account("voice-seed")
        assert requests.post(f"{base}/api/dids", json={"number": "+14155559876"},
                             headers={"Authorization": f"Bearer {key}"},
                             timeout=10).status_code == 201
        yield server, key
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)
        redis.stop()


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
