"""Answering-machine detection and voicemail drops on real calls: the engine originates to the
carrier Asterisk over SIP, the carrier answers each call by playing one answer of the
labelled corpus (tests/amd_corpus.py: people, voicemail greetings ending in beeps or in
silence, faxes, dead air), the engine listens over AudioSocket, decides, and leaves the
drop. The carrier records what it plays and hears, so the drop is measured at the far end.

The confusion matrix this prints is the one in docs/amd.md.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import time
import wave

import numpy as np
import pytest

from admin_api import assets
from admin_api.call_actions import service as actions_service
from admin_api.voice import service as voice_service
from tests import amd_corpus
from tests.engine_support import running_engine
from tests.fakes.fake_ultravox import FakeUltravox, attach_carrier
from tests.integration.outbound_support import (
    FROM,
    WebhookReceiver,
    make_account,
    outbound_config,
)
from tests.integration.test_call_actions_asterisk import tone_seconds
from tests.store_support import store_on
from trunx import redis_schema, webhook_sign
from trunx.calls import FINAL
from trunx.media import prepare_upload
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

DROP_TEXT = ("Hi, this is Downtown Dental with a reminder of your appointment tomorrow at "
             "ten. Please call us back to confirm.")
FRAME = 160                 # 20 ms at 8 kHz
LOUD = 10 ** (-32 / 20) * 32768     # RMS of a 20 ms frame that is sound, not line noise
UV_KEY = "uv-test-key"


def line(i: int) -> str:
    """The carrier's answering lines: +1NXX555019X plays ANSWER_<digits> (carrier.conf)."""
    return f"+1{201 + i // 10}555019{i % 10}"


def pcm_of(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)


def loud_frames(pcm: np.ndarray) -> np.ndarray:
    n = len(pcm) // FRAME
    rms = np.sqrt((pcm[:n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1))
    return np.flatnonzero(rms > LOUD)


def offset_ms(recording: np.ndarray, played: np.ndarray) -> float:
    """Where the answer starts in the carrier's recording (Playback starts a moment after
    MixMonitor): the lag, 0-1 s, that best lines up its first seconds."""
    a = played[:3 * 8000]
    best = max(range(0, 8000, 8), key=lambda lag: float(np.dot(recording[lag:lag + len(a)], a))
               if lag + len(a) <= len(recording) else -1.0)
    return best / 8.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return amd_corpus.build_with_available_voices(str(tmp_path_factory.mktemp("amd-corpus")))


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx, originate_cps=0,
                           sounds_dir=str(pbx.sounds_dir_host),
                           asterisk_sounds_dir=pbx.sounds_dir_in_root, webhook_secret="amd-secret")


async def answering_lines(carrier, carrier_ami, corpus) -> dict[str, amd_corpus.Answer]:
    folder = carrier.sounds_dir_host / "amd"
    folder.mkdir(parents=True, exist_ok=True)
    lines = {}
    for i, answer in enumerate(corpus):
        path = folder / f"answer{i:02d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(answer.pcm.astype("<i2").tobytes())
        number = line(i)
        await carrier_ami.action("Setvar", {"Variable": f"ANSWER_{number[1:]}",
                                            "Value": carrier.root_path(path)[:-len(".wav")]})
        lines[number] = answer
    return lines


async def settle(calls: dict[str, Call], redis, timeout: float = 120.0,
                 hang_up: bool = True) -> dict[str, Call]:
    """Wait for every call to end, hanging up those the engine keeps (people, faxes, dead
    air: detection told the client, who would now talk or give up); machines end by
    themselves once the drop has played."""
    asked: set[str] = set()
    async with asyncio.timeout(timeout):
        while True:
            rows = {n: Call.get_by_id(c.id) for n, c in calls.items()}
            for row in rows.values():
                if (hang_up and row.answered_by is not None and row.status not in FINAL
                        and not row.answered_by.startswith("machine_end")
                        and row.id not in asked):
                    voice_service.request_hangup(redis, row.id)
                    asked.add(row.id)
            if all(r.status in FINAL for r in rows.values()):
                return rows
            await asyncio.sleep(0.2)


async def test_corpus_on_real_calls(cfg, redis, carrier, carrier_ami, corpus):
    lines = await answering_lines(carrier, carrier_ami, corpus)
    with WebhookReceiver() as hooks:
        account = make_account(cfg, webhook_url=hooks.url)
        async with running_engine(cfg) as engine:
            placed = {}
            for i, number in enumerate(lines):
                detection = {"machineDetection": "DetectMessageEnd",
                             "voicemailDrop": {"text": DROP_TEXT, "engine": "standard"}}
                if i % 4 == 0:
                    detection["asyncAmd"] = False
                placed[number] = voice_service.place_call(
                    store_on(redis), account.id, FROM, number, config=cfg, detection=detection)
            started = time.monotonic()
            rows = await settle(placed, redis)
            took = time.monotonic() - started
            await engine.webhooks.drain(10)
            assert engine.server.stats["errors"] == 0
    # the drop as staged: its own span of sound is what the far end must hear whole
    drop_file = next(iter(rows.values())).amd["drop"]["file"]
    drop_pcm = pcm_of(os.path.join(cfg.sounds_dir, os.path.basename(drop_file) + ".wav"))
    drop_loud = loud_frames(drop_pcm)
    drop_span = (drop_loud[-1] - drop_loud[0] + 1) * 0.02

    matrix = collections.Counter()
    right = total = beeped = beeps_found = 0
    lags, span_errors, problems = [], [], []
    for number, answer in lines.items():
        row = rows[number]
        matrix[answer.expected, row.answered_by] += 1
        if answer.kind in ("human", "machine"):
            total += 1
            right += (row.answered_by or "").startswith("machine") == (answer.kind == "machine")
        dropped = row.end_reason == "voicemail-dropped"
        if (row.answered_by or "").startswith("machine_end") != dropped:
            problems.append((answer.name, row.answered_by, row.end_reason))
        if answer.beep_end_ms is None:
            continue
        beeped += 1
        if row.answered_by != "machine_end_beep":
            continue
        beeps_found += 1
        (recording_path, *_) = carrier.finished_recordings(f"{number[1:]}-*.wav")
        heard = pcm_of(recording_path)
        beep_end = answer.beep_end_ms + offset_ms(heard, answer.pcm.astype(np.float64))
        after = loud_frames(heard[int(beep_end * 8) + 8 * 20:])   # past the beep's last frame
        assert len(after), f"{answer.name}: no drop heard after the beep"
        # ms from the beep's end to the drop's first sample (its first sound, less the
        # quiet the message itself starts with)
        lags.append(20 + (after[0] - drop_loud[0]) * 20)
        span_errors.append(round((after[-1] - after[0] + 1) * 0.02 - drop_span, 3))

    rows_ = [e for e in ("human", "machine_end_beep", "machine_end_silence", "fax", "unknown")
             if any(k[0] == e for k in matrix)]
    cols = sorted({k[1] or "none" for k in matrix})
    print(f"\n{len(lines)} real calls in {took:.1f} s; expected \\ detected:")
    print(" " * 20 + " ".join(f"{c[:19]:>19}" for c in cols))
    for r in rows_:
        print(f"{r:<20}" + " ".join(f"{matrix[r, c if c != 'none' else None]:>19}"
                                    for c in cols))
    print(f"human vs machine {right}/{total}; beeps found {beeps_found}/{beeped}; "
          f"drop after the beep's end: p50 {np.median(lags):.0f} ms, max {max(lags)} ms "
          f"(the drop's own lead-in {drop_loud[0] * 20} ms); drop length at the far end "
          f"minus the drop's: {min(span_errors):+.2f} to {max(span_errors):+.2f} s")
    assert right >= 0.95 * total
    assert beeps_found >= 0.95 * beeped
    assert not problems, problems
    assert max(lags) <= 300, lags
    assert all(abs(e) <= 0.2 for e in span_errors), span_errors

    # every call sent a signed call.amd webhook carrying what the row says
    secret = "amd-secret"
    amd_hooks = {}
    for request in hooks.requests:
        body = json.loads(request["body"])
        if body["type"] == "call.amd":
            h = request["headers"]
            assert webhook_sign.verify(secret, h[webhook_sign.TIMESTAMP_HEADER],
                                       request["body"], h[webhook_sign.SIGNATURE_HEADER])
            amd_hooks[body["call"]["id"]] = body
    assert set(amd_hooks) == {r.id for r in rows.values()}
    for row in rows.values():
        body = amd_hooks[row.id]
        assert body["answeredBy"] == row.answered_by == body["status"]
        assert body["machineDetectionDuration"] == row.amd["result"]["detectionMs"]
        assert Call.get_by_id(row.id).answered_by == row.answered_by


async def test_an_ai_call_starts_its_agent_only_for_a_person(tmp_path, redis_server, redis,
                                                             pbx, carrier, carrier_ami, corpus):
    """machineDetection on an AI call: a voicemail greeting is hung up on before any Ultravox
    call exists (the agent never talks to a machine); a person gets the agent."""
    person = next(i for i, a in enumerate(corpus) if a.kind == "human")
    machine = next(i for i, a in enumerate(corpus) if a.kind == "machine")
    lines = await answering_lines(carrier, carrier_ami, corpus)
    agent_line = "+12025550103"        # carrier: answers, runs STEPS_12025550103
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{agent_line[1:]}", "Value": "w2-h"})
    with FakeUltravox(api_key=UV_KEY) as fake:
        await attach_carrier(fake, carrier, carrier_ami, agent_line)
        cfg = outbound_config(tmp_path, redis_server.url, pbx, originate_cps=0,
                              ultravox_api_key=UV_KEY, ultravox_base_url=fake.base_url,
                              ultravox_end_wait=5.0)
        account = make_account(cfg)
        async with running_engine(cfg):
            placed = {n: voice_service.place_call(
                store_on(redis), account.id, FROM, n, config=cfg,
                ai={"systemPrompt": "Confirm the appointment."},
                detection={"machineDetection": "Enable"})
                for n in (line(person), line(machine))}
            rows = await settle(placed, redis, timeout=60, hang_up=False)   # the agent ends it
        to_machine, to_person = rows[line(machine)], rows[line(person)]
        assert (to_machine.answered_by, to_machine.end_reason) == ("machine_start",
                                                                   "machine-detected")
        assert to_person.answered_by == "human"
        # one INVITE to the agent and one Ultravox call, the person's; none for the machine
        (invite,) = fake.invites
        assert invite["admitted"] is True
        (uv_id,) = fake.calls
        assert to_person.ai_result["ultravoxCallId"] == uv_id
        assert lines[line(machine)].kind == "machine"


def tone_asset(cfg, redis, account):
    """A one-second 440 Hz tone as the account's audio asset."""
    tone = subprocess.run(["sox", "-n", "-t", "wav", "-r", "8000", "-c", "1", "-b", "16", "-",
                           "synth", "1", "sine", "440", "vol", "0.5"],
                          check=True, capture_output=True).stdout
    return assets.create(store_on(redis), account.id, "tone", prepare_upload(tone, cfg), cfg,
                         source="upload")


async def test_async_detection_lets_actions_through_sync_holds_them(cfg, redis, carrier,
                                                                     carrier_ami, corpus):
    """While the engine listens, asyncAmd (the default) sends a live action over AMI at once
    (the call goes on); asyncAmd false keeps it queued until the result is in."""
    dead_air = next(i for i, a in enumerate(corpus) if a.name == "dead-air")
    await answering_lines(carrier, carrier_ami, corpus)
    number = line(dead_air)            # silence: detection runs its whole silence timeout
    account = make_account(cfg)
    tone = tone_asset(cfg, redis, account)
    seen = {}
    async with running_engine(cfg):
        for async_amd in (True, False):
            call = voice_service.place_call(
                store_on(redis), account.id, FROM, number, config=cfg,
                detection={"machineDetection": "Enable", "asyncAmd": async_amd,
                           "machineDetectionSilenceTimeout": 4000})
            async with asyncio.timeout(20):
                while not redis.exists(redis_schema.live_call_key(call.id)):
                    await asyncio.sleep(0.05)
            action_id = actions_service.dtmf(redis, cfg, account.id, call.id, {"digits": "7"})[
                "dtmf_uuid"]
            async with asyncio.timeout(20):
                while redis.hget(redis_schema.action_key(action_id), "status") != "completed":
                    await asyncio.sleep(0.05)
            state = redis.hgetall(redis_schema.action_key(action_id))
            row = Call.get_by_id(call.id)
            seen[async_amd] = (state.get("via"), row.answered_by)
            # the far end got the digit either way
            await carrier_ami.wait_event(
                lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "7"
                and e.get("Direction") == "Received", timeout=10)
            carrier_ami.events.clear()
            if async_amd:        # a play over AMI is heard by the callee while we listen
                played = actions_service.play(redis, cfg, account.id, call.id,
                                              {"audio_id": tone.id})["play_uuid"]
                async with asyncio.timeout(20):
                    while redis.hget(redis_schema.action_key(played), "status") != "completed":
                        await asyncio.sleep(0.05)
                assert redis.hget(redis_schema.action_key(played), "via") == "bridge"
                assert Call.get_by_id(call.id).answered_by is None   # still listening
            voice_service.request_hangup(redis, call.id)
            async with asyncio.timeout(15):
                while Call.get_by_id(call.id).status not in FINAL:
                    await asyncio.sleep(0.1)
    # async: over AMI while detection still ran (no answer yet when it completed);
    # sync: over AGI, after the result
    assert seen[True] == ("bridge", None)
    assert seen[False] == (None, "unknown")
    first = carrier.finished_recordings(f"{number[1:]}-*.wav")[-2]     # the async call's
    assert tone_seconds(first) == pytest.approx(1.0, abs=0.25)


async def test_the_sandbox_voicemail_line_gets_the_drop(cfg, redis, carrier):
    """The README's sandbox voicemail number (Asterisk's own vm-intro and beep sounds):
    a call with a voicemailDrop ends voicemail-dropped after the beep."""
    account = make_account(cfg)
    async with running_engine(cfg):
        call = voice_service.place_call(
            store_on(redis), account.id, FROM, "+12025550170", config=cfg,
            detection={"voicemailDrop": {"text": "Hello from the sandbox.",
                                         "engine": "standard"}})
        (row,) = (await settle({"vm": call}, redis, timeout=60)).values()
    assert (row.answered_by, row.end_reason) == ("machine_end_beep", "voicemail-dropped")
