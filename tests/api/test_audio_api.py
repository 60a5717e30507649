"""Audio endpoints (seed 000): real espeak-ng and sox, files staged on disk, and the
ElevenLabs path against the fake provider server."""
from __future__ import annotations

import io
import json
import os
import wave

import pytest

from tests.api.conftest import SEED_TREE, make_audio, state
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from trunx import redis_schema

SEED_TTS = {"name": "Welcome Greeting",
            "text": "Thank you for calling. Please hold while we connect you.",
            "voice": "EXAVITQu4vr4xnSDxMaL"}


def fetch_wav(client, tenant, asset) -> tuple[float, wave._wave_params]:
    with client.get(f"/audio/{asset['id']}/file", headers=tenant.headers) as r:
        assert r.status_code == 200 and r.mimetype == "audio/wav"
        with wave.open(io.BytesIO(r.data)) as w:
            return w.getnframes() / w.getframerate(), w.getparams()


def staged(config, asset_id) -> str:
    return os.path.join(config.staged_sounds_dir, asset_id + ".wav")


def test_tts_seed_example(client, tenant, config):
    r = client.post("/audio", json=SEED_TTS, headers=tenant.headers)
    assert r.status_code == 201, r.json
    body = r.json
    assert body["id"].startswith("aud_") and body["name"] == "Welcome Greeting"
    assert body["url"] == f"http://localhost/audio/{body['id']}/file"
    # an ElevenLabs voice id on the embedded engine: spoken by espeak-ng, and said so
    assert [w["code"] for w in body["warnings"]] == ["voice-substituted"]
    seconds, params = fetch_wav(client, tenant, body)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    assert abs(body["durationSeconds"] - seconds) < 0.1
    assert os.path.isfile(staged(config, body["id"]))
    listed = client.get("/audio", headers=tenant.headers).json
    assert listed == {"audio": [{k: body[k] for k in ("id", "name", "url",
                                                      "durationSeconds")}]}


def test_public_base_url_shapes_the_url(make_app, config, tenant):
    app = make_app(config.replace(public_base_url="https://voice.example.com/"))
    r = app.test_client().post("/audio", json={"name": "n", "text": "hello"},
                               headers=tenant.headers)
    assert r.json["url"] == f"https://voice.example.com/audio/{r.json['id']}/file"
    assert "warnings" not in r.json


@pytest.mark.parametrize("kind", ["mp3", "wav", "ogg"])
def test_upload_formats(client, tenant, config, tmp_path, kind):
    src = make_audio(tmp_path / f"greeting.{kind}", "Our office is closed.")
    with open(src, "rb") as f:
        r = client.post("/audio/upload", headers=tenant.headers,
                        data={"file": (f, f"greeting.{kind}")})
    assert r.status_code == 201, r.json
    assert r.json["name"] == f"greeting.{kind}"     # name defaults to the file name
    seconds, params = fetch_wav(client, tenant, r.json)
    assert params.framerate == 8000 and abs(r.json["durationSeconds"] - seconds) < 0.1
    assert os.path.isfile(staged(config, r.json["id"]))


def test_upload_with_name(client, tenant, tmp_path):
    src = make_audio(tmp_path / "greeting.mp3")
    with open(src, "rb") as f:
        r = client.post("/audio/upload", headers=tenant.headers,
                        data={"file": (f, "greeting.mp3"), "name": "After Hours Greeting"})
    assert r.status_code == 201 and r.json["name"] == "After Hours Greeting"


def test_non_audio_upload_is_415_and_leaves_nothing(client, tenant, redis, config):
    before = state(config, redis)
    r = client.post("/audio/upload", headers=tenant.headers,
                    data={"file": (io.BytesIO(b"%PDF-1.7 not audio" * 100), "greeting.mp3")})
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported-media-type"
    r = client.post("/audio/upload", headers=tenant.headers, data={"name": "no file"})
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "file"
    assert state(config, redis) == before


def test_broken_audio_is_422_and_leaves_nothing(client, tenant, redis, config):
    before = state(config, redis)
    # a WAV header over garbage: sniffed as wav, refused by sox
    broken = b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 8
    r = client.post("/audio/upload", headers=tenant.headers,
                    data={"file": (io.BytesIO(broken), "broken.wav")})
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] in ("transcode-failed", "empty-audio")
    assert state(config, redis) == before


def test_oversize_upload_is_413_and_leaves_nothing(make_app, config, tenant, redis, tmp_path):
    app = make_app(config.replace(upload_max_bytes=20_000))
    client = app.test_client()
    before = state(config, redis)
    # just over the limit: counted by the endpoint
    r = client.post("/audio/upload", headers=tenant.headers,
                    data={"file": (io.BytesIO(b"RIFF" + b"\0" * 20_000), "big.wav")})
    assert r.status_code == 413 and r.json["error"]["code"] == "payload-too-large"
    # far over: refused by Flask's MAX_CONTENT_LENGTH before the body is parsed
    r = client.post("/audio/upload", headers=tenant.headers,
                    data={"file": (io.BytesIO(b"\0" * 500_000), "huge.wav")})
    assert r.status_code == 413 and r.json["error"]["code"] == "payload-too-large"
    assert r.json["error"]["details"] == {"max_bytes": 20_000}
    assert state(config, redis) == before


def test_delete_in_use_and_force(client, tenant, redis, config):
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = client.post("/ivr/qualify-business/audio", headers=tenant.headers,
                    json={"node": "has_business", "text": "Are you a business owner?"})
    asset = r.json["audio"]
    r = client.delete(f"/audio/{asset['id']}", headers=tenant.headers)
    assert r.status_code == 409
    assert r.json["error"]["code"] == "audio-in-use"
    assert r.json["error"]["details"] == {"ivrs": ["qualify-business"]}
    assert os.path.isfile(staged(config, asset["id"]))
    r = client.delete(f"/audio/{asset['id']}?force=true", headers=tenant.headers)
    assert r.status_code == 200 and r.json == {"deleted": True}
    assert not os.path.exists(staged(config, asset["id"]))
    assert not os.listdir(os.path.join(config.data_dir, "audio"))
    assert client.get(f"/audio/{asset['id']}/file", headers=tenant.headers).status_code == 404
    assert client.delete(f"/audio/{asset['id']}", headers=tenant.headers).status_code == 404


def test_an_asset_named_in_a_tree_is_played_at_once(client, tenant, redis, config, tmp_path):
    """The seed tree names "welcome.wav"; uploading welcome.wav republishes it."""
    client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    src = make_audio(tmp_path / "welcome.wav", "Welcome to Acme.", kind="wav")
    with open(src, "rb") as f:
        r = client.post("/audio/upload", headers=tenant.headers,
                        data={"file": (f, "welcome.wav")})
    asset_id = r.json["id"]
    key = redis_schema.ivr_current_key(tenant.id, "qualify-business")
    assert redis.get(key) == "2"
    compiled = json.loads(redis.get(redis_schema.ivr_version_key(
        tenant.id, "qualify-business", 2)))
    assert compiled["nodes"]["welcome"]["audio"] == f"{config.asterisk_sounds_path}/{asset_id}"
    assert compiled["entry"] == "welcome"
    # in use by name; a forced delete republishes again, back to the sound name
    r = client.delete(f"/audio/{asset_id}", headers=tenant.headers)
    assert r.status_code == 409 and r.json["error"]["details"]["ivrs"] == ["qualify-business"]
    client.delete(f"/audio/{asset_id}?force=true", headers=tenant.headers)
    assert redis.get(key) == "3"
    compiled = json.loads(redis.get(redis_schema.ivr_version_key(
        tenant.id, "qualify-business", 3)))
    assert compiled["nodes"]["welcome"]["audio"] == "welcome"


def test_other_accounts_audio_is_404(client, tenant, other):
    asset = client.post("/audio", json={"name": "n", "text": "hi"},
                        headers=other.headers).json
    for method, path in [("get", f"/audio/{asset['id']}/file"),
                         ("delete", f"/audio/{asset['id']}")]:
        r = getattr(client, method)(path, headers=tenant.headers)
        assert r.status_code == 404 and r.json["error"]["code"] == "audio-not-found"
    assert client.get("/audio", headers=tenant.headers).json == {"audio": []}


def test_tts_input_errors(client, tenant, redis, config):
    before = state(config, redis)
    for body, field in [({"text": "hi"}, "name"), ({"name": "n"}, "text"),
                        ({"name": "n", "text": "  "}, "text"),
                        ({"name": "n", "text": "x" * 5001}, "text"),
                        ({"name": "n", "text": "hi", "voice": 7}, "voice"),
                        ({"name": "n", "text": "hi", "speed": 2}, "speed")]:
        r = client.post("/audio", json=body, headers=tenant.headers)
        assert r.status_code == 422, body
        assert r.json["error"]["details"][0]["field"] == field
    assert state(config, redis) == before


@pytest.fixture
def elevenlabs():
    with FakeElevenLabs(api_key="el-test-key") as fake:
        yield fake


@pytest.fixture
def neural(make_app, config, elevenlabs):
    app = make_app(config.replace(elevenlabs_api_key="el-test-key",
                                  elevenlabs_base_url=elevenlabs.base_url))
    return app.test_client()


def test_elevenlabs_voice_id(neural, tenant, elevenlabs):
    r = neural.post("/audio", json=SEED_TTS, headers=tenant.headers)
    assert r.status_code == 201, r.json
    assert "warnings" not in r.json
    [call] = [q for q in elevenlabs.requests if q["method"] == "POST"]
    assert call["path"] == "/v1/text-to-speech/EXAVITQu4vr4xnSDxMaL"
    assert call["json"]["text"] == SEED_TTS["text"]
    seconds, _ = fetch_wav(neural, tenant, r.json)
    assert abs(r.json["durationSeconds"] - seconds) < 0.1


def test_elevenlabs_voice_name_on_an_ivr_node(neural, tenant, elevenlabs, redis, config):
    neural.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    r = neural.post("/ivr/qualify-business/audio", headers=tenant.headers, json={
        "node": "welcome", "voice": "rachel", "text": "Press 1 if you are a business owner."})
    assert r.status_code == 201, r.json
    assert elevenlabs.count("POST", "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM") == 1
    assert not [w for w in r.json["warnings"] if w["code"] == "voice-substituted"]


def test_elevenlabs_unknown_voice_leaves_nothing(neural, tenant, redis, config):
    neural.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    before = state(config, redis)
    r = neural.post("/audio", json={**SEED_TTS, "voice": "nobody"}, headers=tenant.headers)
    assert r.status_code == 400 and r.json["error"]["code"] == "unknown-voice"
    r = neural.post("/ivr/qualify-business/audio", headers=tenant.headers,
                    json={"node": "welcome", "voice": "nobody", "text": "hi"})
    assert r.status_code == 400
    assert state(config, redis) == before
