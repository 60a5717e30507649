"""POST /audio with the local neural voice (no ElevenLabs key): real Piper in its own
process, real sox; the worker is killed and restarted for real."""
from __future__ import annotations

import io
import os
import signal
import sys
import wave

import numpy as np
import pytest

from trunx.media import piper
from trunx.models import AudioAsset

TEXT = "Thank you for calling Acme Dental. Please hold while we connect you."


def worker(config) -> piper.Piper:
    # the same client the API process renders with (one per voice and process)
    return piper.shared(config.neural_voice, config.piper_timeout)


def fetch_pcm(client, tenant, asset_id) -> tuple[np.ndarray, int]:
    with client.get(f"/audio/{asset_id}/file", headers=tenant.headers) as r:
        assert r.status_code == 200
        with wave.open(io.BytesIO(r.data)) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
            return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def speech_shape(samples: np.ndarray, rate: int) -> tuple[float, int]:
    """(share of 20 ms frames with energy, number of separate voiced runs): speech comes in
    bursts (syllables, words) with quiet between; a tone or noise is one long run."""
    frame = rate // 50
    frames = samples[:len(samples) // frame * frame].astype(np.float64).reshape(-1, frame)
    energy = np.sqrt((frames ** 2).mean(axis=1))
    voiced = energy > max(300.0, 0.1 * energy.max())
    runs = int(np.count_nonzero(np.diff(voiced.astype(np.int8)) == 1) + voiced[0])
    return float(voiced.mean()), runs


def test_neural_without_a_key_speaks_with_piper_and_caches(client, tenant, config):
    assert not config.elevenlabs_api_key
    r = client.post("/audio", json={"name": "greeting", "text": TEXT, "engine": "neural"},
                    headers=tenant.headers)
    assert r.status_code == 201, r.json
    assert "warnings" not in r.json
    samples, rate = fetch_pcm(client, tenant, r.json["id"])
    assert rate == 8000                       # transcoded from Piper's 22.05 kHz
    seconds = len(samples) / rate
    assert 2.5 < seconds < 10 and abs(r.json["durationSeconds"] - seconds) < 0.05
    share, runs = speech_shape(samples, rate)
    assert 0.3 < share < 0.97 and runs >= 5, (share, runs)
    asset = AudioAsset.get_by_id(r.json["id"])
    assert (asset.provider, asset.voice) == ("neural", "en_US-joe-medium")

    # The second request is a cache hit: with the worker stopped, nothing starts it again.
    cached = os.path.join(config.data_dir, "cache", "tts", asset.content_hash + ".wav")
    before = os.stat(cached).st_mtime_ns
    worker(config).close()
    again = client.post("/audio", json={"name": "again", "text": TEXT},   # neural by default
                        headers=tenant.headers)
    assert again.status_code == 201
    assert AudioAsset.get_by_id(again.json["id"]).content_hash == asset.content_hash
    assert worker(config).pid is None and os.stat(cached).st_mtime_ns == before


def test_the_worker_is_its_own_process_and_is_restarted_when_killed(client, tenant, config):
    r = client.post("/audio", json={"name": "one", "text": "First prompt.", "engine": "neural"},
                    headers=tenant.headers)
    assert r.status_code == 201
    pid = worker(config).pid
    assert pid is not None and pid != os.getpid()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"trunx.media.piper_worker" in f.read()
    # piper (GPL-3.0) and its runtime never load into this process
    assert "piper" not in sys.modules and "onnxruntime" not in sys.modules

    # killed just before the request: its pipes may still be open while it dies
    os.kill(pid, signal.SIGKILL)
    r = client.post("/audio", json={"name": "two", "text": "Second prompt.", "engine": "neural"},
                    headers=tenant.headers)
    assert r.status_code == 201, r.json
    assert worker(config).pid not in (None, pid)
    samples, rate = fetch_pcm(client, tenant, r.json["id"])
    assert speech_shape(samples, rate)[1] >= 2


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "   "}, {"text": "x" * 5001},
                                  {"text": 7}, {"text": "hi", "voice": 5}])
def test_bad_input_gets_the_same_4xx_as_espeak(client, tenant, body):
    answers = []
    for engine in ("standard", "neural"):
        r = client.post("/audio", json={"name": "n", **body, "engine": engine},
                        headers=tenant.headers)
        answers.append((r.status_code, r.json["error"]["code"],
                        [d.get("field") for d in r.json["error"]["details"]]))
    assert answers[0] == answers[1] and 400 <= answers[0][0] < 500, answers


def test_engine_and_voice_are_checked(client, tenant):
    r = client.post("/audio", json={"name": "n", "text": "hi", "engine": "polly"},
                    headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid-provider")
    # an ElevenLabs voice id on the local neural engine: its one voice speaks, and says so
    r = client.post("/audio", json={"name": "n", "text": "Hello there.", "engine": "neural",
                                    "voice": "EXAVITQu4vr4xnSDxMaL"}, headers=tenant.headers)
    assert r.status_code == 201
    assert [w["code"] for w in r.json["warnings"]] == ["voice-substituted"]
    assert "en_US-joe-medium" in r.json["warnings"][0]["message"]


def test_without_the_extra_neural_is_503_naming_it(client, tenant, monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)     # as if piper-tts were not installed
    r = client.post("/audio", json={"name": "n", "text": "hi", "engine": "neural"},
                    headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (503, "provider-not-configured")
    assert r.json["error"]["details"]["extra"] == "neural"
    # and the default engine falls back to espeak-ng
    r = client.post("/audio", json={"name": "n", "text": "hi"}, headers=tenant.headers)
    assert r.status_code == 201
    assert AudioAsset.get_by_id(r.json["id"]).provider == "standard"
