"""Call Actions (seed 004) through the Flask app, with no engine: a live call is one whose
Redis key an engine session would hold, and the test plays the engine where it must (it
finishes a recording). Seed shapes, the 403/404/409 rules, field validation naming the
field, media staged for play and speak, and what goes onto the engine's command stream."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devtools.stack import wait_until
from tests.api.test_openapi import conforms
from trunx import dnc, recordings, redis_schema
from trunx.models import Call, Did, Recording, utcnow

CALL = "650e8400-e29b-41d4-a716-446655440000"
DID = "+14155551234"
KINDS = ("transfer", "record", "play", "speak", "dtmf")
BODIES = {"transfer": {"to": "+14155559999"}, "record": {}, "dtmf": {"digits": "1"},
          "play": {"url": "http://127.0.0.1:9/a.wav"}, "speak": {"text": "hello"}}


def path(tenant, kind: str, call: str = CALL) -> str:
    return f"/v1/voice/accounts/{tenant.id}/calls/{call}/{kind}"


def go_live(redis, account_id: str, call: str = CALL, status: str = "in-progress") -> None:
    """What an engine session writes while it holds the call."""
    redis.hset(redis_schema.live_call_key(call),
               mapping={"account": account_id, "direction": "outbound", "status": status,
                        "channel": "PJSIP/carrier-00000001", "from": DID,
                        "to": "+14155559999", "since": "2026-03-09T15:30:00.000Z"})
    redis.zadd(redis_schema.live_calls_key(account_id), {call: 1})


def commands(redis) -> list[dict]:
    return [fields for _, fields in redis.xrange(redis_schema.COMMAND_STREAM)]


@pytest.fixture
def live(redis, tenant):
    go_live(redis, tenant.id)
    return CALL


@pytest.fixture
def audio_server(tmp_path):
    wav = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(wav), "synth", "1.5", "sine",
                    "440"], check=True)
    body = wav.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            ok = self.path == "/tone.wav"
            self.send_response(200 if ok else 404)
            self.end_headers()
            if ok:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- which calls take actions ------------------------------------------------------------------
def test_another_accounts_auth_id_is_403(client, tenant, other, live):
    for kind in KINDS:
        r = client.post(path(other, kind), json=BODIES[kind], headers=tenant.headers)
        assert r.status_code == 403, kind
        assert r.json["error"]["code"] == "forbidden"
    r = client.delete(path(other, "record"), headers=tenant.headers)
    assert r.status_code == 403


def test_unknown_and_other_accounts_calls_are_404(client, tenant, other, redis):
    go_live(redis, other.id)      # live, but not this account's
    for call in (CALL, "no-such-call"):
        for kind in KINDS:
            r = client.post(path(tenant, kind, call), json=BODIES[kind], headers=tenant.headers)
            assert (r.status_code, r.json["error"]["code"]) == (404, "call-not-found"), kind
    assert commands(redis) == []


def test_a_call_not_in_progress_is_409_for_every_action(client, tenant, redis):
    Call.create(id=CALL, account=tenant.id, direction="outbound", status="completed",
                from_number=DID, to_number="+14155559999")
    for kind in KINDS:
        r = client.post(path(tenant, kind), json=BODIES[kind], headers=tenant.headers)
        assert r.status_code == 409, kind
        assert r.json["error"]["code"] == "call-not-in-progress"
        assert r.json["error"]["details"]["status"] == "completed"
    r = client.delete(path(tenant, "record"), headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (409, "call-not-in-progress")
    assert commands(redis) == []


def test_a_transferred_call_is_409_while_its_bridge_lasts(client, tenant, redis):
    go_live(redis, tenant.id, status="transferred")
    r = client.post(path(tenant, "dtmf"), json={"digits": "1"}, headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (409, "call-not-in-progress")
    assert r.json["error"]["details"]["status"] == "transferred"


def test_live_calls_list_the_accounts_calls_in_progress(client, tenant, other, redis):
    go_live(redis, tenant.id)
    go_live(redis, other.id, call="someone-elses")
    redis.zadd(redis_schema.live_calls_key(tenant.id), {"engine-died": 2})   # hash expired
    r = client.get(f"/v1/voice/accounts/{tenant.id}/calls", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json == {"calls": [{"call_uuid": CALL, "direction": "outbound",
                                 "status": "in-progress", "from": DID, "to": "+14155559999",
                                 "since": "2026-03-09T15:30:00.000Z"}], "count": 1}
    conforms(r, "/v1/voice/accounts/{auth_id}/calls", "get")
    assert redis.zrange(redis_schema.live_calls_key(tenant.id), 0, -1) == [CALL]
    r = client.get(f"/v1/voice/accounts/{other.id}/calls", headers=tenant.headers)
    assert r.status_code == 403


# -- dtmf, transfer ----------------------------------------------------------------------------
def test_dtmf_answers_like_the_seed_and_goes_to_the_engine(client, tenant, live, redis):
    r = client.post(path(tenant, "dtmf"), json={"digits": "1234*#"}, headers=tenant.headers)
    assert r.status_code == 200
    assert list(r.json) == ["dtmf_uuid", "status", "digits"]
    assert (r.json["status"], r.json["digits"]) == ("sent", "1234*#")
    conforms(r, "/v1/voice/accounts/{auth_id}/calls/{call_uuid}/dtmf", "post")
    (command,) = commands(redis)
    assert command["call"] == CALL and command["action"] == "dtmf"
    assert command["id"] == r.json["dtmf_uuid"]
    assert json.loads(command["params"]) == {"digits": "1234*#"}
    state = client.get(f"/v1/voice/accounts/{tenant.id}/calls/{CALL}/actions/"
                       f"{r.json['dtmf_uuid']}", headers=tenant.headers)
    assert state.status_code == 200
    assert (state.json["type"], state.json["status"]) == ("dtmf", "queued")
    conforms(state, "/v1/voice/accounts/{auth_id}/calls/{call_uuid}/actions/{action_uuid}",
             "get")


@pytest.mark.parametrize("digits", ["12a", "", "1 2", 12, "1" * 101])
def test_dtmf_digits_are_0_9_star_hash(client, tenant, live, digits):
    r = client.post(path(tenant, "dtmf"), json={"digits": digits}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json["error"]["details"][0]["field"] == "digits"


def test_transfer_checks_number_caller_id_and_dnc(client, tenant, live, redis):
    Did.create(number=DID, account=tenant.id)
    h = tenant.headers
    bad = [({"to": "4155559999"}, "to"), ({"to": "+14155559999", "caller_id": "+14155550000"},
                                          "caller_id"),
           ({"to": "+14155559999", "answer_url": "ftp://x"}, "answer_url")]
    for body, field in bad:
        r = client.post(path(tenant, "transfer"), json=body, headers=h)
        assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == field
    dnc.suppress(tenant.id, "+14155550111", source="api", redis=redis)
    r = client.post(path(tenant, "transfer"), json={"to": "+14155550111"}, headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (403, "number-suppressed")
    assert commands(redis) == []
    r = client.post(path(tenant, "transfer"), headers=h, json={
        "to": "+14155559999", "caller_id": DID, "answer_url": "https://example.com/answer"})
    assert r.status_code == 200
    assert r.json == {"transfer_uuid": r.json["transfer_uuid"], "status": "transferring",
                      "to": "+14155559999"}
    assert list(r.json) == ["transfer_uuid", "status", "to"]
    (command,) = commands(redis)
    assert json.loads(command["params"]) == {"to": "+14155559999", "caller_id": DID,
                                             "answer_url": "https://example.com/answer"}


# -- record ------------------------------------------------------------------------------------
def test_record_validates_and_allows_one_at_a_time(client, tenant, live, redis):
    h = tenant.headers
    for body, field in [({"format": "ogg"}, "format"), ({"max_length": 0}, "max_length"),
                        ({"max_length": "60"}, "max_length"),
                        ({"trim_silence": "yes"}, "trim_silence")]:
        r = client.post(path(tenant, "record"), json=body, headers=h)
        assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == field
    r = client.post(path(tenant, "record"), json={}, headers=h)
    assert r.status_code == 200
    assert r.json == {"recording_uuid": r.json["recording_uuid"], "status": "recording",
                      "format": "mp3"}
    rec = Recording.get_by_id(r.json["recording_uuid"])
    assert (rec.max_length, rec.trim_silence, rec.call_id) == (14400, False, CALL)
    again = client.post(path(tenant, "record"), json={"format": "wav"}, headers=h)
    assert (again.status_code, again.json["error"]["code"]) == (409, "recording-in-progress")
    (command,) = commands(redis)
    assert command["action"] == "record" and command["id"] == rec.id


def test_the_call_details_list_its_recordings(client, tenant, live, redis):
    Call.create(id=CALL, account=tenant.id, direction="outbound", status="answered",
                from_number=DID, to_number="+14155559999", call_sid="CA" + "0" * 32)
    assert "recordings" not in client.get(f"/api/voice/{CALL}", headers=tenant.headers).json
    rec = client.post(path(tenant, "record"), json={}, headers=tenant.headers).json
    r = client.get(f"/api/voice/{CALL}", headers=tenant.headers)
    assert r.json["recordings"] == [{
        "recording_uuid": rec["recording_uuid"], "status": "starting", "format": "mp3",
        "url": f"http://localhost/v1/voice/accounts/{tenant.id}/recordings/"
               f"{rec['recording_uuid']}.mp3", "duration": None}]
    conforms(r, "/api/voice/{call_id}", "get")


def test_stop_waits_for_the_engine_and_serves_the_file(client, tenant, live, redis, config):
    h = tenant.headers
    r = client.delete(path(tenant, "record"), headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (409, "not-recording")
    rec_id = client.post(path(tenant, "record"), json={"format": "wav"},
                         headers=h).json["recording_uuid"]
    final = recordings.final_file(config, tenant.id, rec_id, "wav")

    def engine():       # what agi_server.calls.actions does once StopMixMonitor is done
        import os
        import time
        while not any(c["action"] == "record_stop" for c in commands(redis)):
            time.sleep(0.02)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", final, "trim", "0", "5.2"],
                       check=True)
        Recording.update(status="stopped", file_path=final, duration=5.2,
                         ended_at=utcnow()).where(Recording.id == rec_id).execute()

    worker = threading.Thread(target=engine)
    worker.start()
    r = client.delete(path(tenant, "record"), headers=h)
    worker.join()
    assert r.status_code == 200
    assert list(r.json)[:4] == ["recording_uuid", "status", "url", "duration"]
    assert r.json["status"] == "stopped" and r.json["duration"] == 5
    assert r.json["duration_ms"] == 5200
    assert r.json["url"] == (f"http://localhost/v1/voice/accounts/{tenant.id}/recordings/"
                             f"{rec_id}.wav")
    conforms(r, "/v1/voice/accounts/{auth_id}/calls/{call_uuid}/record", "delete")
    with client.get(r.json["url"], headers=h) as f:
        assert f.status_code == 200 and f.mimetype == "audio/wav" and f.data[:4] == b"RIFF"
    assert client.get(r.json["url"]).status_code == 401
    assert client.get(r.json["url"].replace(".wav", ".mp3"), headers=h).status_code == 404


# -- play, speak -------------------------------------------------------------------------------
def test_play_fetches_transcodes_and_stages(make_app, config, tenant, redis, audio_server):
    go_live(redis, tenant.id)
    client = make_app(config.replace(fetch_allow_private=True)).test_client()
    url = audio_server + "/tone.wav"
    r = client.post(path(tenant, "play"), json={"url": url, "loop": 0}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json == {"play_uuid": r.json["play_uuid"], "status": "playing", "url": url}
    (command,) = commands(redis)
    params = json.loads(command["params"])
    assert params["loop"] == 0 and params["duration"] == pytest.approx(1.5, abs=0.01)
    staged = f"{config.staged_sounds_dir}/{params['name']}.wav"
    assert params["file"] == f"{config.staged_sounds_dir}/{params['name']}"
    import wave
    with wave.open(staged) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
    missing = client.post(path(tenant, "play"), json={"url": audio_server + "/nope.wav"},
                          headers=tenant.headers)
    assert (missing.status_code, missing.json["error"]["code"]) == (502, "fetch-failed")


def test_play_refuses_private_addresses_by_default(client, tenant, live, audio_server, redis):
    r = client.post(path(tenant, "play"), json={"url": audio_server + "/tone.wav"},
                    headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (400, "url-not-allowed")
    r = client.post(path(tenant, "play"), json={"url": "file:///etc/passwd"},
                    headers=tenant.headers)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid-url")
    assert commands(redis) == []


def test_speak_renders_with_the_local_neural_voice_or_espeak(client, tenant, live, redis,
                                                              monkeypatch):
    h = tenant.headers
    r = client.post(path(tenant, "speak"), json={"text": "x" * 3001}, headers=h)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "text"
    text = "Thank you for calling. Please hold while we connect you."
    # no ElevenLabs key: the seed's example (neural, a cloud voice name) speaks with Piper
    r = client.post(path(tenant, "speak"), json={
        "text": text, "voice": "en-US-Neural-Jenny", "language": "en-US", "engine": "neural"},
        headers=h)
    assert r.status_code == 200, r.json
    assert r.json == {"speak_uuid": r.json["speak_uuid"], "status": "speaking", "text": text}
    r = client.post(path(tenant, "speak"), json={
        "text": text, "language": "en-GB", "engine": "standard"}, headers=h)
    assert r.status_code == 200
    r = client.post(path(tenant, "speak"), json={"text": "Bonjour.", "language": "fr-FR"},
                    headers=h)
    assert r.status_code == 200
    neural, standard, french = (json.loads(c["params"]) for c in commands(redis))
    assert (neural["engine"], neural["voice"]) == ("neural", "en_US-joe-medium")
    assert (standard["engine"], standard["voice"]) == ("standard", "en-gb")
    # the local voice speaks English only; a default engine in French is espeak-ng's
    assert (french["engine"], french["voice"]) == ("standard", "fr-fr")
    # two sentences: the first is staged before the answer, the second while it plays
    assert neural["parts"] == standard["parts"] == 2 and french.get("parts") is None
    for params in (neural, standard):
        key = redis_schema.action_key(params["stream"].split(":")[2])
        speech = wait_until(lambda key=key: redis.hget(key, "speech"), timeout=20,
                            message="the second sentence")
        (second,) = [json.loads(p) for p in redis.lrange(params["stream"], 0, -1)]
        assert second["name"] == params["name"] + "_1" and second["duration"] > 0.5
        assert json.loads(speech) == {"parts": 2, "duration": pytest.approx(
            params["duration"] + second["duration"], abs=0.01)}
        assert json.loads(speech)["duration"] > 2
    # without the `neural` extra (piper hidden from imports), neural by name is a 503
    monkeypatch.setitem(sys.modules, "piper", None)
    r = client.post(path(tenant, "speak"), json={"text": "hi", "engine": "neural"}, headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (503, "provider-not-configured")
    assert "trunx[neural]" in r.json["error"]["message"]


def test_unknown_body_fields_are_named(client, tenant, live):
    r = client.post(path(tenant, "dtmf"), json={"digits": "1", "tone": 1},
                    headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "tone"


# -- play an asset (audio_id, or the asset's own url) ------------------------------------------
def test_play_takes_an_asset_by_id_or_by_its_own_url(client, tenant, other, live, redis,
                                                      config):
    h = tenant.headers
    made = client.post("/audio", json={"name": "hold", "text": "Please hold."}, headers=h)
    assert made.status_code in (200, 201), made.json
    asset_id, own_url = made.json["id"], made.json["url"]
    theirs = client.post("/audio", json={"name": "x", "text": "Theirs."},
                         headers=other.headers).json["id"]

    r = client.post(path(tenant, "play"), json={"audio_id": asset_id, "loop": 2}, headers=h)
    assert r.status_code == 200, r.json
    assert r.json == {"play_uuid": r.json["play_uuid"], "status": "playing",
                      "audio_id": asset_id}
    r = client.post(path(tenant, "play"), json={"url": own_url}, headers=h)   # no fetch
    assert r.status_code == 200, r.json
    assert r.json == {"play_uuid": r.json["play_uuid"], "status": "playing", "url": own_url}
    by_id, by_url = [json.loads(c["params"]) for c in commands(redis)]
    # the file staged when the asset was made; no per-action copy for the engine to remove
    for params in (by_id, by_url):
        assert params["file"] == f"{config.staged_sounds_dir}/{asset_id}"
        assert params["audio_id"] == asset_id and "name" not in params
    assert (by_id["loop"], by_url["loop"]) == (2, 1)

    bad = [({"audio_id": "aud_nope"}, "audio_id", "unknown-audio"),
           ({"audio_id": theirs}, "audio_id", "unknown-audio"),
           ({"url": own_url.replace(asset_id, theirs)}, "url", "unknown-audio"),
           ({"url": own_url, "audio_id": asset_id}, "audio_id", "conflict"),
           ({}, "url", "required"),
           ({"audio_id": 7}, "audio_id", "invalid-type")]
    for body, field, code in bad:
        r = client.post(path(tenant, "play"), json=body, headers=h)
        assert r.status_code == 422, body
        (problem,) = r.json["error"]["details"]
        assert (problem["field"], problem["code"]) == (field, code), body
    assert len(commands(redis)) == 2


# -- attended transfer --------------------------------------------------------------------------
def consult_state(redis, transfer_id: str, **fields) -> None:
    """What the engine's consult loop writes into the transfer's state."""
    redis.hset(redis_schema.action_key(transfer_id), mapping=fields)


def test_attended_transfer_answers_consulting_and_takes_complete_or_cancel(
        client, tenant, other, live, redis):
    h = tenant.headers
    r = client.post(path(tenant, "transfer"), json={"to": "+14155559999", "mode": "attended"},
                    headers=h)
    assert r.status_code == 200, r.json
    xfer = r.json["transfer_uuid"]
    assert r.json == {"transfer_uuid": xfer, "status": "consulting", "to": "+14155559999",
                      "mode": "attended"}
    (command,) = commands(redis)
    assert json.loads(command["params"])["mode"] == "attended"
    done = f"{path(tenant, 'transfer')}/{xfer}"

    # the target has not answered yet: complete is refused, cancel is not
    consult_state(redis, xfer, status="consulting", consult="ringing")
    r = client.post(f"{done}/complete", headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (409, "consult-not-answered")
    consult_state(redis, xfer, consult="answered")
    r = client.post(f"{done}/complete", headers=h)
    assert (r.status_code, r.json) == (200, {"transfer_uuid": xfer, "status": "completing"})
    r = client.post(f"{done}/cancel", headers=h)
    assert (r.status_code, r.json) == (200, {"transfer_uuid": xfer, "status": "canceling"})
    sent = [(c["action"], c["id"]) for c in commands(redis)[1:]]
    assert sent == [("transfer_complete", xfer), ("transfer_cancel", xfer)]
    state = client.get(f"/v1/voice/accounts/{tenant.id}/calls/{CALL}/actions/{xfer}",
                       headers=h).json
    assert (state["mode"], state["consult"]) == ("attended", "answered")

    consult_state(redis, xfer, status="canceled")
    r = client.post(f"{done}/complete", headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (409, "transfer-not-consulting")
    r = client.post(f"{path(tenant, 'transfer')}/nope/cancel", headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (404, "transfer-not-found")
    r = client.post(f"{path(other, 'transfer', CALL)}/{xfer}/cancel", headers=other.headers)
    assert r.status_code == 404                 # not their call
    blind = client.post(path(tenant, "transfer"), json={"to": "+14155559999"}, headers=h)
    assert list(blind.json) == ["transfer_uuid", "status", "to"]
    r = client.post(f"{path(tenant, 'transfer')}/{blind.json['transfer_uuid']}/complete",
                    headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (409, "not-attended")


def test_attended_transfer_mode_is_checked_and_refused_on_a_bridged_call(
        client, tenant, live, redis):
    h = tenant.headers
    r = client.post(path(tenant, "transfer"), json={"to": "+14155559999", "mode": "warm"},
                    headers=h)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "mode"
    redis.hset(redis_schema.live_call_key(CALL), "bridged", "1")    # the engine is in a Dial
    r = client.post(path(tenant, "transfer"), json={"to": "+14155559999", "mode": "attended"},
                    headers=h)
    assert (r.status_code, r.json["error"]["code"]) == (409, "call-bridged")
    assert "blind" in r.json["error"]["message"]
    r = client.post(path(tenant, "transfer"), json={"to": "+14155559999"}, headers=h)
    assert r.status_code == 200          # a blind transfer of a bridged call goes over AMI
    assert [c["action"] for c in commands(redis)] == ["transfer"]
