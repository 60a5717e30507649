"""Call Actions (seed 004) on real calls, proven at the far end: the API (Flask, in a thread)
enqueues, the engine (in-process) carries the action out on our PBX, and the test carrier
(a second Asterisk over SIP) is the one that hears it, detects the DTMF, records the audio.

Outbound: the engine calls a carrier number that answers and records what it hears.
Inbound: the carrier calls our DID, which runs an IVR; its caller records what it hears.
Both record with MixMonitor on the carrier side; the carrier sends silence while it waits
(transmit_silence, as a phone does), so time passes in its recordings as on the line.
Last, the seed page's own curl examples on a live call.
"""
from __future__ import annotations

import array
import asyncio
import json
import subprocess
import threading
import time
import uuid
import wave
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.serving import make_server

from admin_api import create_app
from admin_api.voice import service as voice_service
from devtools.stack import wait_until
from devtools.stack.ami import originate_local
from tests.engine_support import running_engine, seed_account
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.integration import call_actions_seed as seed
from tests.integration.outbound_support import (
    FROM,
    WebhookReceiver,
    make_account,
    outbound_config,
    wait_status,
)
from tests.store_support import store_on
from trunx import accounts, redis_schema, webhook_sign
from trunx.media import piper
from trunx.models import Account, Call, CallEvent, Did

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

SECOND_DID = "+14155550002"
IVR_DID = "+19495551234"
TONE_SECONDS = 3.0
TREE = {"nodes": {"menu": {"audio": "beep", "gather": {"1": "bye"}, "timeout": 60,
                           "timeout_node": "menu"},
                  "bye": {"action": "hangup"}}}
LONG_TEXT = ("This is a long announcement from the trunx test suite. It keeps on talking "
             "for a good while, so that the caller has plenty of time to press a key and "
             "cut it short. Numbers one two three four five six seven eight nine ten, and "
             "then eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen.")


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(
        tmp_path, redis_server.url, pbx, sounds_dir=str(pbx.sounds_dir_host),
        asterisk_sounds_dir=pbx.sounds_dir_in_root,
        recording_spool_dir=str(pbx.recordings_dir_host),
        asterisk_recording_spool_dir=pbx.recordings_dir_in_root,
        fetch_allow_private=True, transfer_timeout=10)


@pytest.fixture
def account(cfg, redis):
    acc = make_account(cfg)
    Did.create(number=SECOND_DID, account=acc)
    return acc


@pytest.fixture
def tone(tmp_path):
    """A 3 s 440 Hz tone served over HTTP on loopback (hence fetch_allow_private)."""
    wav = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth",
                    str(TONE_SECONDS), "sine", "440", "vol", "0.5"], check=True)
    body = wav.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tone.wav"
    server.shutdown()
    server.server_close()


class Api:
    """The admin API in this process; requests run in a thread so the engine, on this
    event loop, keeps running while one waits (DELETE .../record does)."""

    def __init__(self, cfg, redis, account):
        self.app = create_app(cfg, redis=redis)
        self.client = self.app.test_client()
        self.account = account
        self.headers = {"Authorization": f"Bearer {accounts.create_key(account)}"}

    def path(self, call_id: str, kind: str, auth_id: str | None = None) -> str:
        return f"/v1/voice/accounts/{auth_id or self.account.id}/calls/{call_id}/{kind}"

    async def post(self, call_id: str, kind: str, body: dict, **kw):
        r = await asyncio.to_thread(self.client.post, self.path(call_id, kind, **kw),
                                    json=body, headers=self.headers)
        return r.status_code, r.get_json()

    async def delete_record(self, call_id: str, **kw):
        r = await asyncio.to_thread(self.client.delete, self.path(call_id, "record", **kw),
                                    headers=self.headers)
        return r.status_code, r.get_json()

    async def state(self, call_id: str, action_id: str) -> dict:
        r = await asyncio.to_thread(self.client.get, self.path(call_id, f"actions/{action_id}"),
                                    headers=self.headers)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    async def wait_state(self, call_id: str, action_id: str, statuses, timeout=30.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                state = await self.state(call_id, action_id)
                if state["status"] in statuses:
                    return state
                await asyncio.sleep(0.1)

    async def get(self, url: str) -> dict:
        r = await asyncio.to_thread(self.client.get, url, headers=self.headers)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    async def get_file(self, url: str) -> bytes:
        def get():
            with self.client.get(url, headers=self.headers) as r:
                assert r.status_code == 200
                return r.data
        return await asyncio.to_thread(get)


@pytest.fixture
def api(cfg, redis, account):
    return Api(cfg, redis, account)


async def wait_live(redis, call_id: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not redis.exists(redis_schema.live_call_key(call_id)):
            await asyncio.sleep(0.05)


def received_dtmf(ami, since: int = 0) -> list[dict]:
    """DTMF the carrier received from our PBX (RFC 4733 on its PJSIP/pbx-... channels)."""
    return [e for e in ami.events[since:] if e.get("Event") == "DTMFEnd"
            and e.get("Direction") == "Received" and e.get("Channel", "").startswith("PJSIP/pbx-")]


async def dtmf_heard(carrier_ami, count: int, since: int, timeout: float = 15.0) -> list[dict]:
    async with asyncio.timeout(timeout):
        while len(received_dtmf(carrier_ami, since)) < count:
            await asyncio.sleep(0.05)
    return received_dtmf(carrier_ami, since)


def loud_seconds(path, threshold: int = 800) -> float:
    """Seconds of 20 ms frames whose RMS is above `threshold` (the tone, or speech)."""
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    step = rate // 50
    loud = 0
    for i in range(0, len(samples) - step + 1, step):
        frame = samples[i:i + step]
        if (sum(s * s for s in frame) / step) ** 0.5 > threshold:
            loud += 1
    return loud / 50


def tone_seconds(path, freq: float = 440.0, threshold: int = 800) -> float:
    """Seconds of 20 ms frames that are loud and mostly `freq` (Goertzel against the
    frame's energy): the played tone, not speech or DTMF."""
    import math
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    step = rate // 50
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    frames = 0
    for i in range(0, len(samples) - step + 1, step):
        frame = samples[i:i + step]
        energy = sum(s * s for s in frame)
        if (energy / step) ** 0.5 <= threshold:
            continue
        s1 = s2 = 0.0
        for x in frame:
            s1, s2 = x + coeff * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - coeff * s1 * s2      # |X(freq)|^2
        if power / (energy * step / 2) > 0.5:
            frames += 1
    return frames / 50


def check_dtmf_order(events: list[dict], digits: str) -> list[float]:
    assert [e["Digit"] for e in events] == list(digits)
    durations = [int(e["DurationMs"]) for e in events]
    ends = [float(e["Timestamp"]) for e in events]
    pitch = [round(b - a, 3) for a, b in zip(ends, ends[1:], strict=False)]
    print(f"dtmf at the far end: durations {durations} ms, end to end {pitch} s")
    # sent as 200 ms tones with 200 ms gaps; RTP rounds each tone up to its packets
    assert all(200 <= d <= 280 for d in durations), durations
    assert all(p == pytest.approx(0.4, abs=0.08) for p in pitch), pitch
    return pitch


async def carrier_recording(carrier, pattern: str, timeout: float = 10.0):
    found = await asyncio.to_thread(wait_until, lambda: carrier.finished_recordings(pattern),
                                    timeout, message=pattern)
    return found[-1]  # the newest: the carrier lives for the session, lines are reused


# -- outbound ------------------------------------------------------------------------------------
async def test_outbound_dtmf_record_play_then_409(cfg, account, api, redis, carrier,
                                                  carrier_ami, tone, other_account):
    number = "+12025550101"
    with WebhookReceiver() as hooks:
        async with running_engine(cfg) as engine:
            call = voice_service.place_call(store_on(redis), account.id, FROM, number, config=cfg,
                                    webhook_url=hooks.url)
            row = await outbound_dtmf_record_play(engine, call, api, carrier_ami, tone)
            await engine.webhooks.drain(10)
    # the hangup webhook names the recording, and the finished file had one of its own
    bodies = [json.loads(r["body"]) for r in hooks.requests]
    (completed,) = [b for b in bodies if b["type"] == "call.status"
                    and b["status"] == "completed"]
    (ready,) = [b["recording"] for b in bodies if b["type"] == "recording.ready"]
    assert (ready["recording_uuid"], ready["callId"]) == (row.recording, call.id)
    (listed,) = completed["call"]["recordings"]
    assert listed["recording_uuid"] == row.recording and listed["format"] == "wav"
    assert listed["url"] == (f"/v1/voice/accounts/{account.id}/recordings/"
                             f"{row.recording}.wav")
    heard = tone_seconds(await carrier_recording(carrier, "12025550101-*.wav"))
    assert heard == pytest.approx(2 * TONE_SECONDS, rel=0.10)
    print(f"outbound: record {row.stopped['duration_ms']} ms for {row.asked:.3f} s,"
          f" tone heard {heard:.2f} s of {2 * TONE_SECONDS:.1f} s")

    # the call is over: every action is 409; another account's key gets 403 / 404
    assert row.status == "completed"
    for kind, req in [("dtmf", {"digits": "1"}), ("play", {"url": tone}),
                      ("speak", {"text": "hi"}), ("record", {}),
                      ("transfer", {"to": "+12025550104"})]:
        status, body = await api.post(call.id, kind, req)
        assert (status, body["error"]["code"]) == (409, "call-not-in-progress"), kind
    assert (await api.delete_record(call.id))[0] == 409
    status, body = await other_account.post(call.id, "dtmf", {"digits": "1"},
                                            auth_id=account.id)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await other_account.post(call.id, "dtmf", {"digits": "1"})
    assert (status, body["error"]["code"]) == (404, "call-not-found")


async def outbound_dtmf_record_play(engine, call, api, carrier_ami, tone):
    """DTMF, 5 s of recording, a play looped twice, then DELETE /api/voice; the final row
    with what was measured."""
    redis = api.app.extensions["trunx.store"].redis
    await wait_status(call.id, {"answered"})
    await wait_live(redis, call.id)

    # DTMF: detected by the carrier, in order, 200 ms tones 200 ms apart
    since = len(carrier_ami.events)
    status, body = await api.post(call.id, "dtmf", {"digits": "1234*#"})
    assert (status, body) == (200, {"dtmf_uuid": body["dtmf_uuid"], "status": "sent",
                                    "digits": "1234*#"})
    check_dtmf_order(await dtmf_heard(carrier_ami, 6, since), "1234*#")
    assert (await api.wait_state(call.id, body["dtmf_uuid"], {"completed"}))["result"] \
        == {"digits": "1234*#"}

    # a recording of about 5 s of the call, in wav
    status, rec = await api.post(call.id, "record", {"format": "wav"})
    assert (status, rec["status"], rec["format"]) == (200, "recording", "wav")
    await api.wait_state(call.id, rec["recording_uuid"], {"recording"})
    began = time.monotonic()           # MixMonitor runs: about 5 s of the call, then stop
    await asyncio.sleep(5.0)
    asked = time.monotonic() - began
    status, stopped = await api.delete_record(call.id)
    assert status == 200, stopped
    assert stopped["recording_uuid"] == rec["recording_uuid"]
    assert stopped["duration_ms"] / 1000 == pytest.approx(asked, abs=0.5)
    assert stopped["duration"] == 5
    blob = await api.get_file(stopped["url"])
    assert blob[:4] == b"RIFF" and blob[8:12] == b"WAVE"

    # play twice: the carrier hears 2 x 3 s of tone
    status, play = await api.post(call.id, "play", {"url": tone, "loop": 2})
    assert (status, play["status"], play["url"]) == (200, "playing", tone)
    done = await api.wait_state(call.id, play["play_uuid"], {"completed"}, timeout=20)
    assert done["result"] == {"plays": 2}
    await asyncio.to_thread(api.client.delete, f"/api/voice/{call.id}",
                            headers=api.headers)
    row = await wait_status(call.id)
    assert engine.server.stats["errors"] == 0
    row.recording, row.stopped, row.asked = rec["recording_uuid"], stopped, asked
    return row


NEURAL_TEXT = ("Thanks for holding. Your appointment with Doctor Patel is confirmed for "
               "Tuesday at ten in the morning. Please arrive fifteen minutes early and bring "
               "your insurance card with you.")


def first_loud_ms(samples, threshold: int = 800) -> int | None:
    """Where the first loud 20 ms frame of 8 kHz samples starts."""
    for i in range(0, len(samples) - 160, 160):
        frame = samples[i:i + 160]
        if (sum(x * x for x in frame) / 160) ** 0.5 > threshold:
            return i // 8
    return None


async def test_the_seed_speak_on_a_keyless_install_is_neural_speech_at_the_far_end(
        cfg, account, api, redis, carrier):
    """No ElevenLabs key: the Call Actions page's speak example (engine neural, the
    default) speaks with the local neural voice instead of answering 503, and a
    200-character text is heard sentence by sentence."""
    assert not cfg.elevenlabs_api_key and piper.available(), "make install adds [neural]"
    await asyncio.to_thread(piper.shared(cfg.neural_voice, cfg.piper_timeout).warm)
    number = "+12025550104"
    async with running_engine(cfg) as engine:
        call = voice_service.place_call(store_on(redis), account.id, FROM, number, config=cfg)
        await wait_status(call.id, {"answered"})
        await wait_live(redis, call.id)
        body = json.loads(seed.SPEAK.split("-d '", 1)[1].rsplit("'", 1)[0])   # verbatim
        status, speak = await api.post(call.id, "speak", body)
        assert status == 200, speak
        done = await api.wait_state(call.id, speak["speak_uuid"], {"completed"})
        assert (done["params"]["engine"], done["params"]["voice"]) == ("neural",
                                                                       "en_US-joe-medium")
        sent = time.time()
        status, long_speak = await api.post(call.id, "speak", {"text": NEURAL_TEXT})
        long_done = await api.wait_state(call.id, long_speak["speak_uuid"], {"completed"},
                                         timeout=30)
        await asyncio.to_thread(api.client.delete, f"/api/voice/{call.id}", headers=api.headers)
        await wait_status(call.id)
        assert engine.server.stats["errors"] == 0
    assert long_done["params"]["parts"] == 3 and long_done["params"]["engine"] == "neural"
    assert long_done["params"]["duration"] > 7        # every sentence was played
    recording = await carrier_recording(carrier, "12025550104-*.wav")
    # the seed's two sentences, then the long text's three: all of it neural speech
    assert loud_seconds(recording, 300) > 0.6 * (done["params"]["duration"]
                                                 + long_done["params"]["duration"])
    # from the request to the engine starting the first sentence on the channel (the
    # far end hears it one RTP packet later)
    first = round((datetime.fromisoformat(long_done["started_at"]).timestamp() - sent) * 1000)
    assert first > 0
    print(f"\nkeyless neural speak of {len(NEURAL_TEXT)} characters: the first sentence on "
          f"the channel {first} ms after the request; "
          f"{long_done['params']['duration']:.1f} s of speech in 3 parts")


@pytest.fixture
def other_account(cfg, redis, account):
    return Api(cfg, redis, Account.create(name="someone else"))


async def test_outbound_speak_is_heard_cut_by_a_key_and_play_gives_way(
        cfg, account, api, redis, carrier, carrier_ami, tone):
    number = "+12025550102"
    # the far end presses 5 nine seconds into the call
    await carrier_ami.action("Setvar", {"Variable": "STEPS_12025550102", "Value": "w9-d5"})
    async with running_engine(cfg) as engine:
        call = voice_service.place_call(store_on(redis), account.id, FROM, number, config=cfg)
        await wait_status(call.id, {"answered"})
        await wait_live(redis, call.id)
        # a recording capped at 2 s: stopped by the engine while the tone plays on
        _, short = await api.post(call.id, "record", {"format": "wav", "max_length": 2})
        await api.wait_state(call.id, short["recording_uuid"], {"recording"})
        _, play = await api.post(call.id, "play", {"url": tone, "loop": 0})
        await api.wait_state(call.id, play["play_uuid"], {"playing"})
        capped = await api.wait_state(call.id, short["recording_uuid"], {"stopped"}, 10)
        assert capped["result"]["end_reason"] == "max-length"
        assert capped["result"]["duration"] == pytest.approx(2.0, abs=0.5)
        assert (await api.state(call.id, play["play_uuid"]))["status"] == "playing"
        status, speak = await api.post(call.id, "speak", {"text": LONG_TEXT,
                                                          "engine": "standard"})
        assert (status, speak["status"], speak["text"]) == (200, "speaking", LONG_TEXT)
        played = await api.wait_state(call.id, play["play_uuid"], {"interrupted"})
        assert played["result"]["by"] == "action"
        spoken = await api.wait_state(call.id, speak["speak_uuid"], {"interrupted"},
                                      timeout=30)
        assert spoken["result"] == {"by": "dtmf", "digit": "5", "plays": 0}
        full = spoken["params"]["duration"]
        await asyncio.to_thread(api.client.delete, f"/api/voice/{call.id}",
                                headers=api.headers)
        await wait_status(call.id)
        assert engine.server.stats["errors"] == 0
    heard = loud_seconds(await carrier_recording(carrier, "12025550102-*.wav"), 300)
    # tone, then speech until the key at 9 s: heard, and cut well short of its end
    assert 2.0 < heard < full
    print(f"outbound speak: {heard:.2f} s loud at the carrier; the speech was {full:.1f} s")


async def test_outbound_transfer_bridges_the_far_end_and_ends_the_call(
        cfg, account, api, redis, carrier, carrier_ami):
    number, target = "+12025550103", "+12025550104"
    # Y, the target, answers, presses 7 (which must reach X, the callee we transfer, through
    # our bridge) and hangs up; X just waits
    await carrier_ami.action("Setvar", {"Variable": "STEPS_12025550104",
                                        "Value": "w1-d7-w1-h"})
    with WebhookReceiver() as hooks:
        async with running_engine(cfg) as engine:
            call = voice_service.place_call(store_on(redis), account.id, FROM, number, config=cfg)
            await wait_status(call.id, {"answered"})
            await wait_live(redis, call.id)
            # a transfer to a busy number fails and the caller is back on the call
            _, busy = await api.post(call.id, "transfer", {"to": "+12025550110"})
            failed = await api.wait_state(call.id, busy["transfer_uuid"], {"failed"})
            assert failed["error"]["dial_status"] == "BUSY"
            assert redis.exists(redis_schema.live_call_key(call.id))
            since = len(carrier_ami.events)
            status, body = await api.post(call.id, "dtmf", {"digits": "9"})
            assert status == 200
            await dtmf_heard(carrier_ami, 1, since)

            status, moved = await api.post(call.id, "transfer", {
                "to": target, "caller_id": SECOND_DID, "answer_url": hooks.url})
            assert (status, moved["status"], moved["to"]) == (200, "transferring", target)
            answered = await api.wait_state(call.id, moved["transfer_uuid"],
                                            {"answered", "completed"})
            assert answered["status"] in ("answered", "completed")
            row = await wait_status(call.id, timeout=5)
            assert (row.status, row.end_reason) == ("completed", "transferred")
            status, body = await api.post(call.id, "dtmf", {"digits": "1"})
            assert (status, body["error"]["code"]) == (409, "call-not-in-progress")
            # Y's 7 crosses our bridge to X
            arrived = await carrier_ami.wait_event(
                lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == target, 5)
            x = await carrier_ami.wait_event(
                lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == number, 5)
            await carrier_ami.wait_event(
                lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "7"
                and e.get("Direction") == "Received" and e.get("Uniqueid") == x["Uniqueid"],
                timeout=15)
            done = await api.wait_state(call.id, moved["transfer_uuid"], {"completed"}, 20)
            assert done["result"]["dial_status"] == "ANSWER"
            await engine.webhooks.drain(10)
            assert engine.server.stats["errors"] == 0
    assert arrived["CallerIDNum"] == SECOND_DID
    (hook,) = [r for r in hooks.requests if b"call.transfer" in r["body"]]
    payload = json.loads(hook["body"])
    assert (payload["transfer_uuid"], payload["call_uuid"], payload["status"]) == (
        moved["transfer_uuid"], call.id, "answered")
    secret = Account.get_by_id(account.id).webhook_secret
    assert webhook_sign.verify(secret, hook["headers"][webhook_sign.TIMESTAMP_HEADER],
                               hook["body"], hook["headers"][webhook_sign.SIGNATURE_HEADER])
    # kept like a status webhook (redelivered after a restart until delivered): delivered
    (kept,) = CallEvent.select().where(CallEvent.call == call.id,
                                       CallEvent.type == "call.transfer")
    assert kept.payload == hook["body"].decode() and kept.delivered_at is not None


# -- inbound, in an IVR ----------------------------------------------------------------------------
async def test_inbound_ivr_call_takes_every_action(cfg, account, api, redis, carrier,
                                                   carrier_ami, tone):
    seed_account(cfg, redis, tree=TREE, did=IVR_DID, ivr_id="actions-menu", account=account)
    heard_file = f"{carrier.recordings_dir_in_root}/inbound-{uuid.uuid4().hex[:8]}.wav"
    async with running_engine(cfg) as engine:
        # the caller presses 5 fourteen seconds in (during the speech), then hangs up later
        caller = await originate_local(carrier_ami, IVR_DID, "w14-d5-w4-h", context="to-pbx",
                                       variables={"RECFILE": heard_file})
        async with asyncio.timeout(15):     # the API lists it while it runs
            while not (live := (await api.get(f"/v1/voice/accounts/{account.id}/calls"))[
                    "calls"]):
                await asyncio.sleep(0.05)
        (listed,) = live
        assert (listed["direction"], listed["to"], listed["status"]) == (
            "inbound", IVR_DID, "in-progress")
        call_id = listed["call_uuid"]
        assert list(engine.registry.sessions) == [call_id]
        started = time.monotonic()

        since = len(carrier_ami.events)
        _, body = await api.post(call_id, "dtmf", {"digits": "1234*#"})
        pitch = check_dtmf_order(await dtmf_heard(carrier_ami, 6, since), "1234*#")
        await api.wait_state(call_id, body["dtmf_uuid"], {"completed"})

        status, rec = await api.post(call_id, "record", {"format": "mp3"})
        assert status == 200
        await api.wait_state(call_id, rec["recording_uuid"], {"recording"})
        rec_began = time.monotonic()

        _, play = await api.post(call_id, "play", {"url": tone, "loop": 1})
        await api.wait_state(call_id, play["play_uuid"], {"completed"}, timeout=15)
        assert time.monotonic() - started < 12, "too slow to speak before the caller's key"
        _, speak = await api.post(call_id, "speak", {"text": LONG_TEXT, "engine": "standard"})
        spoken = await api.wait_state(call_id, speak["speak_uuid"], {"interrupted"}, 20)
        assert spoken["result"]["digit"] == "5"

        asked = time.monotonic() - rec_began
        status, stopped = await api.delete_record(call_id)
        assert status == 200, stopped
        assert stopped["duration_ms"] / 1000 == pytest.approx(asked, abs=0.5)
        blob = await api.get_file(stopped["url"])
        assert stopped["url"].endswith(".mp3") and (blob[:3] == b"ID3" or blob[0] == 0xFF)

        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=20)
        row = await asyncio.to_thread(
            wait_until, lambda: Call.get_or_none(Call.id == call_id,
                                                 Call.ended_at.is_null(False)),
            10, message="the inbound call's final record")
        assert engine.server.stats["errors"] == 0
    assert row.outcome == "caller-hangup" and row.direction == "inbound"
    assert [p["node"] for p in row.path if p["event"] == "enter"] == ["menu"]   # IVR resumed
    heard_path = carrier.host_path(heard_file)
    await asyncio.to_thread(wait_until, heard_path.exists, 5, message="caller's recording")
    tone_heard, loud = tone_seconds(heard_path), loud_seconds(heard_path, 300)
    print(f"inbound: dtmf pitch {pitch}; record {stopped['duration_ms']} ms for {asked:.3f} s;"
          f" tone heard {tone_heard:.2f} s of {TONE_SECONDS} s; loud {loud:.2f} s")
    assert tone_heard == pytest.approx(TONE_SECONDS, rel=0.10)
    assert loud > tone_heard + 1.5           # and the speech, until the caller's key
    status, body = await api.post(call_id, "dtmf", {"digits": "1"})
    assert (status, body["error"]["code"]) == (409, "call-not-in-progress")


async def test_inbound_ivr_transfer_bridges_the_caller_and_ends_the_walk(
        cfg, account, api, other_account, redis, carrier, carrier_ami):
    target = "+12025550105"
    seed_account(cfg, redis, tree=TREE, did=IVR_DID, ivr_id="actions-menu", account=account)
    async with running_engine(cfg) as engine:
        # the target answers, presses 7 (which must reach the caller through our bridge) and
        # hangs up, which ends the call: the caller only waits
        await carrier_ami.action("Setvar", {"Variable": "STEPS_12025550105",
                                            "Value": "w1-d7-w1-h"})
        caller = await originate_local(carrier_ami, IVR_DID, "w30", context="to-pbx")
        async with asyncio.timeout(15):
            while not engine.registry.sessions:
                await asyncio.sleep(0.05)
        (call_id,) = engine.registry.sessions
        await wait_live(redis, call_id)
        # another account: 404 for its own auth_id, 403 for this account's
        assert (await other_account.post(call_id, "dtmf", {"digits": "1"}))[0] == 404
        assert (await other_account.post(call_id, "dtmf", {"digits": "1"},
                                         auth_id=account.id))[0] == 403
        status, moved = await api.post(call_id, "transfer", {"to": target})
        assert (status, moved["status"]) == (200, "transferring")
        await api.wait_state(call_id, moved["transfer_uuid"], {"answered", "completed"})
        status, body = await api.post(call_id, "speak", {"text": "too late"})
        assert (status, body["error"]["code"]) == (409, "call-not-in-progress")
        arrived = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == target, 5)
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "7"
            and e.get("Direction") == "Received" and e.get("Uniqueid") != arrived["Uniqueid"]
            and e.get("Channel", "").startswith("PJSIP/pbx-"), timeout=15)
        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=15)
        done = await api.wait_state(call_id, moved["transfer_uuid"], {"completed"}, 15)
        assert done["result"]["dial_status"] == "ANSWER"
        row = await asyncio.to_thread(
            wait_until, lambda: Call.get_or_none(Call.id == call_id,
                                                 Call.ended_at.is_null(False)),
            10, message="the inbound call's final record")
        assert engine.server.stats["errors"] == 0
    assert row.outcome == "transferred"
    assert arrived["CallerIDNum"] == "+12025550199"     # the caller's own number, passed on


# -- the seed page's own examples ------------------------------------------------------------
# Its curl examples, run unchanged but for the host, key, account id, call id and the two
# example.com URLs (no internet here: the local tone, the local webhook receiver), over real
# HTTP, on a live outbound call. The neural speech goes to the ElevenLabs fake.
def seed_curl(snippet: str, subs: dict) -> tuple[int, dict]:
    for example, real in subs.items():
        snippet = snippet.replace(example, real)
    out = subprocess.run(["bash", "-c", snippet.rstrip() + ' -sS -w "\\n%{http_code}"'],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
def elevenlabs():
    with FakeElevenLabs(api_key="el-test-key") as fake:
        yield fake


async def test_the_pages_curl_examples_on_a_live_call(cfg, account, redis, elevenlabs,
                                                      tone):
    cfg = cfg.replace(elevenlabs_api_key="el-test-key",
                      elevenlabs_base_url=elevenlabs.base_url)
    Did.create(number="+14155551234", account=account)       # the page's caller_id
    api = Api(cfg, redis, account)
    http = make_server("127.0.0.1", 0, api.app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        with WebhookReceiver() as hooks:
            async with running_engine(cfg) as engine:
                call = voice_service.place_call(store_on(redis), account.id, FROM, "+12025550106",
                                        config=cfg)
                await wait_status(call.id, {"answered"})
                await wait_live(redis, call.id)
                subs = {"https://api.tryvox.io": f"http://127.0.0.1:{http.server_port}",
                        "tvx_sk_live_...": api.headers["Authorization"].split()[1],
                        "your_auth_id": account.id, seed.SEED_CALL: call.id,
                        "https://example.com/hold-music.mp3": tone,
                        "https://example.com/transfer-answer": hooks.url}

                async def run(snippet):
                    return await asyncio.to_thread(seed_curl, snippet, subs)

                # +14155559999 is not a number the carrier has: the transfer fails and the
                # call goes on, taking the rest
                status, body = await run(seed.TRANSFER)
                assert (status, list(body), body["status"], body["to"]) == (
                    200, ["transfer_uuid", "status", "to"], "transferring", "+14155559999")
                failed = await api.wait_state(call.id, body["transfer_uuid"], {"failed"})
                assert failed["error"]["code"] == "transfer-failed"
                status, rec = await run(seed.RECORD)
                assert (status, rec["status"], rec["format"]) == (200, "recording", "mp3")
                assert list(rec) == ["recording_uuid", "status", "format"]
                status, play = await run(seed.PLAY)
                assert (status, list(play), play["status"]) == (
                    200, ["play_uuid", "status", "url"], "playing")
                await api.wait_state(call.id, play["play_uuid"], {"playing"})
                status, speak = await run(seed.SPEAK)
                assert (status, speak) == (200, {
                    "speak_uuid": speak["speak_uuid"], "status": "speaking",
                    "text": "Thank you for calling. Please hold while we connect you."})
                assert (await api.wait_state(call.id, play["play_uuid"], {"interrupted"})
                        )["result"]["by"] == "action"
                await api.wait_state(call.id, speak["speak_uuid"], {"completed"}, 20)
                status, dtmf = await run(seed.DTMF)
                assert (status, dtmf) == (200, {"dtmf_uuid": dtmf["dtmf_uuid"],
                                                "status": "sent", "digits": "1234*#"})
                await api.wait_state(call.id, dtmf["dtmf_uuid"], {"completed"})
                status, stopped = await run(seed.STOP)
                assert status == 200, stopped
                assert list(stopped)[:4] == ["recording_uuid", "status", "url", "duration"]
                assert (stopped["recording_uuid"], stopped["status"]) == (
                    rec["recording_uuid"], "stopped")
                assert stopped["url"].endswith(f"/recordings/{rec['recording_uuid']}.mp3")
                assert isinstance(stopped["duration"], int) and stopped["duration"] > 0
                await asyncio.to_thread(api.client.delete, f"/api/voice/{call.id}",
                                        headers=api.headers)
                await wait_status(call.id)
                assert engine.server.stats["errors"] == 0
    finally:
        http.shutdown()
    # the speech went to ElevenLabs (its default voice: the page's is a cloud voice name),
    # a sentence a request: the call hears the first while the second renders
    tts = [q for q in elevenlabs.requests if q["method"] == "POST"]
    assert [q["json"]["text"] for q in tts] == ["Thank you for calling.",
                                                "Please hold while we connect you."]
    assert {q["path"] for q in tts} == {f"/v1/text-to-speech/{cfg.elevenlabs_default_voice}"}
