"""Live actions on every live call, proven at the far end on the two real Asterisks: play of
an audio asset on an IVR call; speak and DTMF on an AI-bridged call (the carrier stands in
for the AI's SIP side); record and play during an IVR transfer's bridge (over AMI: the AGI
session is in its Dial); attended transfer, consult then complete, and consult then cancel
(the caller is back in the IVR, which takes the next key)."""
from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from admin_api import assets
from admin_api.voice import service as voice_service
from devtools.stack import wait_until
from devtools.stack.ami import originate_local
from tests.engine_support import running_engine, seed_account
from tests.fakes.fake_ultravox import FakeUltravox, attach_carrier
from tests.integration import test_call_actions_asterisk as base
from tests.integration.outbound_support import FROM, wait_status
from tests.integration.test_call_actions_asterisk import (
    IVR_DID,
    TONE_SECONDS,
    Api,
    carrier_recording,
    dtmf_heard,
    loud_seconds,
    tone_seconds,
    wait_live,
)
from tests.store_support import store_on
from trunx import redis_schema
from trunx.media import prepare_upload
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]
cfg, account, api = base.cfg, base.account, base.api     # the same fixtures

KEY = "uv-test-key"
MENU = {"audio": "beep", "gather": {"1": "bye"}, "timeout": 60, "timeout_node": "menu"}


def tree(**nodes) -> dict:
    return {"nodes": {"menu": {**MENU, "gather": {**MENU["gather"], **nodes.pop("keys", {})}},
                      "bye": {"action": "hangup"}, **nodes}}


@pytest.fixture
def tone_asset(cfg, account, redis, tmp_path):
    """One of the account's audio assets: a 3 s 440 Hz tone, staged where the PBX plays."""
    wav = tmp_path / "asset.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth",
                    str(TONE_SECONDS), "sine", "440", "vol", "0.5"], check=True)
    rendered = prepare_upload(wav.read_bytes(), cfg)
    return assets.create(store_on(redis), account.id, "tone", rendered, cfg, source="upload")


async def live_call(engine, redis, timeout: float = 15.0) -> str:
    async with asyncio.timeout(timeout):
        while not engine.registry.sessions:
            await asyncio.sleep(0.05)
    (call_id,) = engine.registry.sessions
    await wait_live(redis, call_id)
    return call_id


async def bridged(redis, call_id: str, timeout: float = 20.0) -> None:
    """The engine's session is in its Dial (the live index says so)."""
    async with asyncio.timeout(timeout):
        while redis.hget(redis_schema.live_call_key(call_id), "bridged") != "1":
            await asyncio.sleep(0.05)


async def newest_recording(carrier, pattern: str):
    """The carrier's newest recording for a line (the instance lives for the session)."""
    await carrier_recording(carrier, pattern)
    return carrier.finished_recordings(pattern)[-1]


async def record_of(call_id: str) -> Call:
    """The call's final row (a row exists from the call's start; ended_at marks the last)."""
    return await asyncio.to_thread(
        wait_until, lambda: Call.get_or_none(Call.id == call_id, Call.ended_at.is_null(False)),
        15, message="the inbound call's final record")


# -- play an asset on an IVR call ----------------------------------------------------------------
async def test_play_by_audio_id_on_an_ivr_call_is_heard_by_the_caller(
        cfg, account, api, redis, carrier, carrier_ami, tone_asset):
    seed_account(cfg, redis, tree=tree(), did=IVR_DID, ivr_id="asset-play", account=account)
    heard_file = f"{carrier.recordings_dir_in_root}/asset-{tone_asset.id}.wav"
    async with running_engine(cfg) as engine:
        caller = await originate_local(carrier_ami, IVR_DID, "w12-h", context="to-pbx",
                                       variables={"RECFILE": heard_file})
        call_id = await live_call(engine, redis)
        status, play = await api.post(call_id, "play", {"audio_id": tone_asset.id})
        assert (status, play["status"], play["audio_id"]) == (200, "playing", tone_asset.id)
        done = await api.wait_state(call_id, play["play_uuid"], {"completed"}, timeout=15)
        assert done["result"] == {"plays": 1}
        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=20)
        assert engine.server.stats["errors"] == 0
    heard_path = carrier.host_path(heard_file)
    await asyncio.to_thread(wait_until, heard_path.exists, 5, message="caller's recording")
    assert tone_seconds(heard_path) == pytest.approx(TONE_SECONDS, rel=0.10)


# -- record and play during an IVR transfer's bridge ---------------------------------------------
async def test_record_and_play_during_a_transfers_bridge(cfg, account, api, redis, carrier,
                                                        carrier_ami, tone_asset, tmp_path):
    target = "+13125550101"              # answers and records what it hears
    # the target says something (two beeps), then presses 9: the test's cue to stop recording
    await carrier_ami.action("Setvar", {"Variable": "STEPS_13125550101",
                                        "Value": "w2-pbeep-w1-pbeep-w1-d9-w30"})
    seed_account(cfg, redis, tree=tree(keys={"2": "agent"},
                                       agent={"action": "transfer", "to": target}),
                 did=IVR_DID, ivr_id="bridge-actions", account=account)
    heard_file = f"{carrier.recordings_dir_in_root}/bridge-caller-{tone_asset.id}.wav"
    async with running_engine(cfg) as engine:
        caller = await originate_local(carrier_ami, IVR_DID, "w1-d2-w30-h", context="to-pbx",
                                       variables={"RECFILE": heard_file})
        call_id = await live_call(engine, redis)
        await bridged(redis, call_id)
        status, rec = await api.post(call_id, "record", {"format": "wav"})
        assert status == 200
        started = await api.wait_state(call_id, rec["recording_uuid"], {"recording", "failed"})
        assert started["status"] == "recording", started
        status, play = await api.post(call_id, "play", {"audio_id": tone_asset.id})
        assert status == 200
        done = await api.wait_state(call_id, play["play_uuid"], {"completed", "failed"}, 20)
        assert (done["status"], done["via"]) == ("completed", "bridge"), done
        await carrier_ami.wait_event(lambda e: e.get("Event") == "DTMFEnd" and e.get(
            "Digit") == "9" and e.get("Direction") == "Sent", timeout=20)
        status, stopped = await api.delete_record(call_id)
        assert status == 200, stopped
        assert stopped["duration"] >= TONE_SECONDS
        blob = await api.get_file(stopped["url"])
        rec_path = tmp_path / "recorded.wav"
        await asyncio.to_thread(rec_path.write_bytes, blob)
        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=40)
        row = await record_of(call_id)
        assert engine.server.stats["errors"] == 0
    assert row.outcome == "transferred"
    heard_path = carrier.host_path(heard_file)
    await asyncio.to_thread(wait_until, heard_path.exists, 5, message="caller's recording")
    at_target = await newest_recording(carrier, "13125550101-*.wav")
    recorded = loud_seconds(rec_path, 300)
    print(f"bridge: recorded {recorded:.2f} s loud; tone at the caller "
          f"{tone_seconds(heard_path):.2f} s, at the target {tone_seconds(at_target):.2f} s")
    # the recording has the bridge's audio (the target's beeps, 2 x ~0.25 s). What the play
    # injects is not in it: Asterisk gives spies (MixMonitor, ChanSpy) a frame before
    # whispers are mixed in
    assert recorded >= 0.3
    # the tone went into the bridge: the caller and the target both heard it
    assert tone_seconds(heard_path) == pytest.approx(TONE_SECONDS, rel=0.15)
    assert tone_seconds(at_target) == pytest.approx(TONE_SECONDS, rel=0.15)


# -- speak and DTMF on an AI-bridged call --------------------------------------------------------
@pytest.fixture
def ultravox():
    with FakeUltravox(api_key=KEY) as server:
        yield server


async def ai_config(cfg, ultravox, carrier, carrier_ami, agent_line: str):
    """The engine's config with the fake Ultravox, whose SIP side is the carrier playing
    `agent_line`: the carrier Asterisk stands in for the AI side."""
    await attach_carrier(ultravox, carrier, carrier_ami, agent_line)
    return cfg.replace(ultravox_api_key=KEY, ultravox_base_url=ultravox.base_url,
                       ultravox_end_wait=3.0)


async def ai_call_bridged(cfg, redis, account, callee: str):
    """An AI call to `callee`, answered, live, and in its Dial to the agent."""
    call = voice_service.place_call(store_on(redis), account.id, FROM, callee,
                                    ai={"systemPrompt": "Help."}, config=cfg)
    await wait_status(call.id, {"answered"})
    await wait_live(redis, call.id)
    await bridged(redis, call.id)
    return call


async def test_speak_and_dtmf_on_an_ai_bridged_call_reach_the_agent_side(
        cfg, account, redis, carrier, carrier_ami, ultravox):
    agent_line, callee = "+13125550102", "+13125550103"
    cfg = await ai_config(cfg, ultravox, carrier, carrier_ami, agent_line)
    api = Api(cfg, redis, account)
    async with running_engine(cfg) as engine:
        call = await ai_call_bridged(cfg, redis, account, callee)
        since = len(carrier_ami.events)
        status, dtmf = await api.post(call.id, "dtmf", {"digits": "47#"})
        assert status == 200, dtmf
        agent_leg = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel"
            and e.get("Exten", "").startswith("agent_"), 10)
        heard = [e for e in await dtmf_heard(carrier_ami, 3, since)]
        assert [e["Digit"] for e in heard] == ["4", "7", "#"]
        assert {e["Uniqueid"] for e in heard} == {agent_leg["Uniqueid"]}   # the AI's side
        assert (await api.wait_state(call.id, dtmf["dtmf_uuid"], {"completed"}))["via"] \
            == "bridge"
        status, speak = await api.post(call.id, "speak", {
            "text": "Please read me the order number again.", "engine": "standard"})
        assert status == 200
        spoken = await api.wait_state(call.id, speak["speak_uuid"], {"completed", "failed"}, 20)
        assert spoken["status"] == "completed", spoken
        full = spoken["params"]["duration"]
        await asyncio.to_thread(api.client.delete, f"/api/voice/{call.id}",
                                headers=api.headers)
        await wait_status(call.id)
        assert engine.server.stats["errors"] == 0
    at_agent = loud_seconds(await newest_recording(carrier, "13125550102-*.wav"), 300)
    assert at_agent > 0.5 * full
    print(f"AI bridge: speech of {full:.1f} s, {at_agent:.2f} s loud at the agent side")


async def test_blind_transfer_of_an_ai_bridged_call_moves_the_callee_to_the_target(
        cfg, account, redis, carrier, carrier_ami, ultravox):
    """The callee talks to the agent (a Dial inside the AGI session): a blind transfer goes
    over AMI. The target is called first; once it answers the callee is bridged to it and
    the agent's leg is hung up. The target's key then reaches the callee."""
    agent_line, callee, target = "+13125550105", "+13125550106", "+13125550107"
    cfg = await ai_config(cfg, ultravox, carrier, carrier_ami, agent_line)
    # the target answers, waits, presses 7 (which must reach the callee) and hangs up
    await carrier_ami.action("Setvar", {"Variable": "STEPS_13125550107",
                                        "Value": "w2-d7-w1-h"})
    api = Api(cfg, redis, account)
    async with running_engine(cfg) as engine:
        call = await ai_call_bridged(cfg, redis, account, callee)
        agent_leg = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel"
            and e.get("Exten", "").startswith("agent_"), 10)
        x = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == callee, 5)
        status, moved = await api.post(call.id, "transfer", {"to": target})
        assert (status, moved["status"]) == (200, "transferring")
        state = await api.wait_state(call.id, moved["transfer_uuid"],
                                     {"answered", "completed", "failed"}, 20)
        assert state["status"] in ("answered", "completed"), state
        assert state["via"] == "bridge"
        # the agent's leg is let go, the target's is up, and the callee hears the target
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == agent_leg["Uniqueid"],
            10)
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == target, 5)
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "7"
            and e.get("Direction") == "Received" and e.get("Uniqueid") == x["Uniqueid"], 15)
        row = await wait_status(call.id, timeout=15)
        assert (row.status, row.end_reason) == ("completed", "transferred")
        status, body = await api.post(call.id, "dtmf", {"digits": "1"})
        assert (status, body["error"]["code"]) == (409, "call-not-in-progress")
        assert engine.server.stats["errors"] == 0


# -- attended transfer ---------------------------------------------------------------------------
def caller_leg(carrier_ami) -> str:
    """The carrier's channel toward our PBX for the test caller (where its keys go out)."""
    (begin,) = [e for e in carrier_ami.events if e.get("Event") == "DialBegin"
                and e.get("DialString", "").startswith(IVR_DID)][-1:]
    return begin["DestChannel"]


async def attended_consult(api, call_id: str, target: str) -> str:
    status, xfer = await api.post(call_id, "transfer", {"to": target, "mode": "attended"})
    assert (status, xfer["status"], xfer["mode"]) == (200, "consulting", "attended")
    async with asyncio.timeout(20):
        while (state := await api.state(call_id, xfer["transfer_uuid"])).get(
                "consult") != "answered":
            assert state["status"] in ("queued", "transferring", "consulting"), state
            await asyncio.sleep(0.1)
    return xfer["transfer_uuid"]


async def finish(api, call_id: str, xfer: str, how: str) -> dict:
    r = await asyncio.to_thread(
        api.client.post, f"{api.path(call_id, 'transfer')}/{xfer}/{how}", headers=api.headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


async def test_attended_transfer_consult_then_complete(cfg, account, api, redis, carrier,
                                                      carrier_ami):
    target = "+13125550104"
    # the target, once bridged to the caller, presses 7: the caller must hear it
    await carrier_ami.action("Setvar", {"Variable": "STEPS_13125550104", "Value": "w4-d7-w2-h"})
    seed_account(cfg, redis, tree=tree(), did=IVR_DID, ivr_id="attended", account=account)
    heard_file = f"{carrier.recordings_dir_in_root}/attended-{account.id}.wav"
    async with running_engine(cfg) as engine:
        caller = await originate_local(carrier_ami, IVR_DID, "w40-h", context="to-pbx",
                                       variables={"RECFILE": heard_file})
        call_id = await live_call(engine, redis)
        xfer = await attended_consult(api, call_id, target)
        assert (await finish(api, call_id, xfer, "complete"))["status"] == "completing"
        done = await api.wait_state(call_id, xfer, {"completed", "failed"}, 15)
        assert done["status"] == "completed", done
        status, body = await api.post(call_id, "dtmf", {"digits": "1"})
        assert status in (404, 409), body        # handed off: no longer takes actions
        seven = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "7"
            and e.get("Direction") == "Received"
            and e.get("Channel", "").startswith("PJSIP/pbx-")
            and e.get("Channel") == caller_leg(carrier_ami), timeout=20)
        assert seven
        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=20)
        row = await record_of(call_id)
        assert engine.server.stats["errors"] == 0
    assert row.outcome == "transferred"
    heard = carrier.host_path(heard_file)
    await asyncio.to_thread(wait_until, heard.exists, 5, message="caller's recording")
    hold = tone_seconds(heard, freq=523.25, threshold=300)
    print(f"attended: the caller heard {hold:.2f} s of the hold chime's first note")
    assert hold > 0.1          # music on hold while the target was called


async def test_attended_transfer_consult_then_cancel_returns_the_caller(
        cfg, account, api, redis, carrier, carrier_ami):
    target = "+13125550105"
    seed_account(cfg, redis, tree=tree(), did=IVR_DID, ivr_id="attended", account=account)
    async with running_engine(cfg) as engine:
        caller = await originate_local(carrier_ami, IVR_DID, "w40-h", context="to-pbx")
        call_id = await live_call(engine, redis)
        xfer = await attended_consult(api, call_id, target)
        leg = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == target, 5)
        assert (await finish(api, call_id, xfer, "cancel"))["status"] == "canceling"
        done = await api.wait_state(call_id, xfer, {"canceled", "failed"}, 15)
        assert done["status"] == "canceled", done
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == leg["Uniqueid"], 10)
        assert redis.hget(redis_schema.live_call_key(call_id), "status") == "in-progress"
        # the caller is back in the IVR: a key now is the menu's, which hangs up on "1"
        await carrier_ami.action("PlayDTMF", {"Channel": caller_leg(carrier_ami),
                                              "Digit": "1", "Duration": "200"})
        await carrier_ami.wait_event(caller.is_hangup_of("caller"), timeout=15)
        row = await record_of(call_id)
        assert engine.server.stats["errors"] == 0
    assert row.outcome == "hangup"
    assert [p.get("digits") for p in row.path if p["event"] == "digits"] == ["1"]
    assert json.dumps(row.path)     # the walk resumed in the menu after the consult
