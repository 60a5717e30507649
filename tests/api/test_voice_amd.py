"""Answering-machine detection fields on POST /api/voice and agent calls (admin_api/voice/amd.py):
what is stored for the engine, the drop staged before the row, and every bad value refused
with the field named and nothing left behind."""
from __future__ import annotations

import os

import pytest

from tests.api.conftest import state
from tests.api.test_openapi import conforms
from tests.api.test_voice_api import did, post  # noqa: F401  (did: the fixture, used below)
from trunx.models import Call

pytestmark = pytest.mark.usefixtures("did")      # the account holds the calls' `from`


def test_detection_is_stored_for_the_engine_and_shown(client, tenant):
    r = post(client, tenant, machineDetection="Enable", asyncAmd=False,
             machineDetectionTimeout=20, machineDetectionSpeechThreshold=2000,
             machineDetectionSpeechEndThreshold=900, machineDetectionSilenceTimeout=4000)
    assert r.status_code == 201, r.get_json()
    row = Call.get_by_id(r.get_json()["id"])
    assert row.amd == {"mode": "Enable", "async": False, "timeout_ms": 20000,
                       "speech_threshold_ms": 2000, "speech_end_threshold_ms": 900,
                       "silence_timeout_ms": 4000}
    got = client.get(f"/api/voice/{row.id}", headers=tenant.headers)
    assert got.get_json()["answeredBy"] is None
    conforms(got, "/api/voice/{call_id}", "get")
    plain = post(client, tenant).get_json()["id"]
    assert "answeredBy" not in client.get(f"/api/voice/{plain}",
                                          headers=tenant.headers).get_json()


def test_a_text_drop_is_rendered_and_staged_before_the_call(client, tenant, config):
    r = post(client, tenant, voicemailDrop={"text": "Please call us back.",
                                            "engine": "standard"})
    assert r.status_code == 201, r.get_json()
    amd = Call.get_by_id(r.get_json()["id"]).amd
    assert amd["mode"] == "DetectMessageEnd" and amd["async"] is True
    drop = amd["drop"]
    assert drop["engine"] == "standard" and drop["duration"] > 0.5
    staged = os.path.join(config.staged_sounds_dir, os.path.basename(drop["file"]) + ".wav")
    assert os.path.getsize(staged) > 8000
    again = post(client, tenant, voicemailDrop={"text": "Please call us back.",
                                                "engine": "standard"})
    assert Call.get_by_id(again.get_json()["id"]).amd["drop"]["file"] == drop["file"]


def test_an_asset_drop_is_the_assets_staged_file(client, tenant):
    asset = client.post("/audio", json={"name": "vm", "text": "Hello from the clinic.",
                                        "engine": "standard"}, headers=tenant.headers)
    assert asset.status_code == 201
    audio_id = asset.get_json()["id"]
    r = post(client, tenant, voicemailDrop=audio_id)
    drop = Call.get_by_id(r.get_json()["id"]).amd["drop"]
    assert drop["audio_id"] == audio_id and drop["file"].endswith(audio_id)


@pytest.mark.parametrize("body,field,code", [
    ({"machineDetection": "enable"}, "machineDetection", "invalid-value"),
    ({"machineDetection": 1}, "machineDetection", "invalid-value"),
    ({"machineDetection": "Enable", "voicemailDrop": {"text": "hi"}}, "voicemailDrop",
     "requires-detect-message-end"),
    ({"machineDetection": "Enable", "asyncAmd": "yes"}, "asyncAmd", "invalid-type"),
    ({"machineDetection": "Enable", "machineDetectionTimeout": 61},
     "machineDetectionTimeout", "out-of-range"),
    ({"machineDetection": "Enable", "machineDetectionSpeechThreshold": 2400.5},
     "machineDetectionSpeechThreshold", "out-of-range"),
    ({"machineDetection": "Enable", "machineDetectionSilenceTimeout": True},
     "machineDetectionSilenceTimeout", "out-of-range"),
    ({"asyncAmd": False}, "asyncAmd", "requires-machine-detection"),
    ({"machineDetectionTimeout": 10}, "machineDetectionTimeout", "requires-machine-detection"),
    ({"voicemailDrop": "no-such-asset"}, "voicemailDrop", "unknown-audio"),
    # the published schema's answer: an asset id or {text, voice, engine}, neither
    ({"voicemailDrop": ""}, "voicemailDrop", "invalid-value"),
    ({"voicemailDrop": 5}, "voicemailDrop", "invalid-value"),
    ({"voicemailDrop": {"text": " "}}, "voicemailDrop", "invalid-value"),
    ({"voicemailDrop": {"text": "hi", "url": "http://x"}}, "voicemailDrop", "invalid-value"),
    ({"voicemailDrop": {"text": "hi", "voice": ["a"]}}, "voicemailDrop", "invalid-value"),
])
def test_bad_detection_fields_are_refused_and_nothing_is_stored(client, tenant, config,
                                                                 redis, body, field, code):
    before = state(config, redis)
    r = post(client, tenant, **body)
    assert r.status_code == 422, r.get_json()
    (problem,) = r.get_json()["error"]["details"]
    assert (problem["field"], problem["code"]) == (field, code)
    assert state(config, redis) == before


def test_another_accounts_asset_is_not_a_drop(client, tenant, other):
    theirs = client.post("/audio", json={"name": "vm", "text": "Theirs.", "engine": "standard"},
                         headers=other.headers).get_json()["id"]
    r = post(client, tenant, voicemailDrop=theirs)
    assert r.status_code == 422
    assert r.get_json()["error"]["details"][0]["field"] == "voicemailDrop"
