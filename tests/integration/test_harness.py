"""The harness itself: Redis answers, our Asterisk config boots, the AMI user is least
privilege, the inbound dialplan hands exactly the well-formed DIDs to FastAGI, and a real
SIP call crosses from the PBX to the test carrier and back."""
from __future__ import annotations

import array
import asyncio
import contextlib
import re
import wave
from collections.abc import Awaitable, Callable
from typing import Self

import pytest
import redis

from devtools.stack import Asterisk, wait_until
from devtools.stack.ami import AmiClient, AmiError, event_is, originate_local
from devtools.stack.asterisk import wav_closed


class AgiTalk:
    """The engine's side of one FastAGI session, just enough for these tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def command(self, line: str) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        reply = (await asyncio.wait_for(self.reader.readline(), 15)).decode().strip()
        match = re.match(r"(\d{3}) result=(\S*)", reply)
        assert match, f"unexpected AGI reply to {line!r}: {reply!r}"
        return int(match.group(1)), match.group(2)


Script = Callable[[AgiTalk, dict], Awaitable[object]]


class FakeEngine:
    """A FastAGI listener on the PBX's agi port that records every session's agi_* block
    and runs script on it."""

    def __init__(self, port: int, script: Script | None = None):
        self.port, self.script = port, script
        self.sessions: list[dict[str, str]] = []
        self.results: list[object] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.errors and exc[0] is None:
            raise self.errors[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        try:
            env: dict[str, str] = {}
            while line := (await asyncio.wait_for(reader.readline(), 5)).decode().strip():
                key, _, value = line.partition(": ")
                env[key] = value
            self.sessions.append(env)
            if self.script is not None:
                self.results.append(await self.script(AgiTalk(reader, writer), env))
        except Exception as exc:  # re-raised by __aexit__: the test's failure
            self.errors.append(exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def answer_and_get_digit(agi: AgiTalk, env: dict) -> str:
    assert await agi.command("ANSWER") == (200, "0")
    code, digits = await agi.command("GET DATA silence/10 8000 1")
    assert code == 200
    return digits


def test_redis_answers(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping()
        client.set("trunx:harness", "ok")
        assert client.get("trunx:harness") == b"ok"
    finally:
        client.close()


def test_redis_binds_loopback_only(redis_server):
    assert redis_server.url.startswith("redis://127.0.0.1:")
    assert "--bind" in redis_server.argv() and "127.0.0.1" in redis_server.argv()


def test_pbx_boots_with_our_config(asterisk_root):
    """A PBX of its own: the session's PBX log also holds what earlier tests made Asterisk
    say (a REFER to a bare name logs a failed lookup of this machine's host name)."""
    with Asterisk(asterisk_root, "pbx") as pbx:
        assert pbx.running
        assert "Asterisk 22" in pbx.cli("core show version")
        modules = pbx.cli("module show")
        for needed in ("chan_pjsip.so", "res_agi.so", "app_dial.so", "app_mixmonitor.so"):
            assert needed in modules
        assert "res_ari.so" not in modules and "chan_iax2.so" not in modules  # autoload off
        assert "_+1NXXNXXXXXX" in pbx.cli("dialplan show inbound")
        assert f"127.0.0.1:{pbx.ami_port}" in pbx.cli("manager show settings")
        errors = [line for line in pbx.log_path.read_text().splitlines() if "ERROR[" in line]
        assert errors == []


def test_instances_are_isolated(pbx, asterisk_root):
    other = Asterisk(asterisk_root, "pbx")
    with other:
        assert other.instance_dir_host != pbx.instance_dir_host
        assert {other.ami_port, other.sip_port}.isdisjoint({pbx.ami_port, pbx.sip_port})
        assert other.rtp_end < pbx.rtp_start or other.rtp_start > pbx.rtp_end
        assert other.conf_in_root in other.cli("core show settings")
        assert other.conf_in_root not in pbx.cli("core show settings")
    assert not other.running and not other.instance_dir_host.exists()
    assert pbx.running


async def test_ami_user_is_least_privilege(pbx):
    async with AmiClient(pbx.ami_port, pbx.ami_user, pbx.ami_secret) as pbx_ami:
        await _least_privilege(pbx, pbx_ami)


async def test_the_engines_ami_user_is_sent_only_the_events_it_acts_on(pbx, pbx_ami):
    """The shipped manager.conf's eventfilter: a call makes dozens of events (VarSet,
    Newexten, ...); the engine's user gets its Newchannel, Newstate and Hangup, and none
    of the rest. (pbx_ami is the development stack's observer, which gets them all.)"""
    async with AmiClient(pbx.ami_port, pbx.ami_user, pbx.ami_secret) as engine_ami:
        call = await originate_local(pbx_ami, "+19495550000", "w0.2-h")
        await pbx_ami.wait_event(call.is_hangup_of("callee"), timeout=30)
        await engine_ami.wait_event(lambda e: e.get("Event") == "Hangup"
                                    and e.get("Uniqueid") == call.callee_id, timeout=10)
        seen = {e.get("Event") for e in engine_ami.events if e.get("Event")}
        watched = {e.get("Event") for e in pbx_ami.events if e.get("Event")}
    assert {"Newchannel", "Newstate", "Hangup"} <= seen
    assert {"VarSet", "Newexten"} <= watched
    assert seen <= {"Newchannel", "Newstate", "Hangup", "HangupRequest",
                    "SoftHangupRequest", "OriginateResponse", "DTMFEnd", "DialEnd",
                    "BridgeEnter", "FullyBooted"}, seen


async def _least_privilege(pbx, pbx_ami):
    assert (await pbx_ami.action("Ping"))["Response"] == "Success"
    for action, fields in [("Command", {"Command": "core show version"}),
                           ("GetConfig", {"Filename": "manager.conf"}),
                           ("UpdateConfig", {"SrcFilename": "extensions.conf",
                                             "DstFilename": "extensions.conf"}),
                           ("Reload", {}),
                           ("Originate", {"Channel": "Local/s@test-caller",
                                          "Application": "System", "Data": "touch /tmp/owned"})]:
        with pytest.raises(AmiError, match="Permission denied|Access Forbidden"):
            await pbx_ami.action(action, fields)
    assert not pbx.host_path("/tmp/owned").exists()


async def test_ami_refuses_wrong_secret(pbx):
    client = AmiClient(pbx.ami_port, pbx.ami_user, "not-the-secret")
    try:
        with pytest.raises(AmiError, match="Authentication failed"):
            await client.connect()
    finally:
        await client.close()


async def _call_engine(pbx_ami, agi_port: int, number: str, steps: str = "w1-d1"):
    async with FakeEngine(agi_port, answer_and_get_digit) as engine:
        call = await originate_local(pbx_ami, number, steps)
        await pbx_ami.wait_event(call.is_hangup_of("callee"), timeout=30)
    return engine


@pytest.mark.parametrize("number", ["+19495551234", "9495551234", "19495551234"])
async def test_did_reaches_the_engine_in_e164(pbx, pbx_ami, agi_port, number):
    engine = await _call_engine(pbx_ami, agi_port, number)
    assert len(engine.sessions) == 1
    env = engine.sessions[0]
    assert env["agi_network"] == "yes"
    assert env["agi_network_script"] == "ivr"
    assert env["agi_extension"] == "+19495551234"
    assert env["agi_callerid"] == "+12025550199"
    assert engine.results == ["1"]  # the digit the caller's STEPS sent, read by GET DATA


async def test_international_e164_reaches_the_engine(pbx, pbx_ami, agi_port):
    engine = await _call_engine(pbx_ami, agi_port, "+442071234567")
    assert [s["agi_extension"] for s in engine.sessions] == ["+442071234567"]


@pytest.mark.parametrize("number", [
    "12345",              # too short for anything
    "+10005551234",       # +1 but not a NANP number (area code starts with 0)
    "+1949555123",        # +1 and one digit short
    "+1234567",           # E.164 needs 8 digits at least
    "+1234567890123456",  # and 15 at most
    "+0123456789",        # no country code starts with 0
    "0949555123",         # national, not NANP
    "+44207123456a",      # a letter
])
async def test_invalid_did_never_reaches_the_engine(pbx, pbx_ami, agi_port, number):
    async with FakeEngine(agi_port) as engine:
        call = await originate_local(pbx_ami, number, "w1-d1")
        response = await pbx_ami.wait_event(call.is_originate_response(), timeout=15)
    assert response["Response"] == "Failure"
    assert engine.sessions == []


async def test_engine_down_gives_congestion_not_silence(pbx, pbx_ami):
    # nothing listens on agi_port here: AGI fails and the call is refused at once
    call = await originate_local(pbx_ami, "+19495551234", "w1")
    response = await pbx_ami.wait_event(call.is_originate_response(), timeout=15)
    assert response["Response"] == "Failure"
    wait_until(lambda: "engine unreachable" in pbx.log_path.read_text(), timeout=5,
               message="the dialplan's engine-down warning")


async def test_caller_steps_record_what_the_caller_hears(pbx, pbx_ami, agi_port):
    async def play_beep(agi: AgiTalk, env: dict) -> None:
        await agi.command("ANSWER")
        await agi.command('STREAM FILE beep ""')

    recording = f"{pbx.recordings_dir_in_root}/heard.wav"
    async with FakeEngine(agi_port, play_beep):
        call = await originate_local(pbx_ami, "+19495551234", "w3",
                                     variables={"RECFILE": recording})
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
    heard = pbx.host_path(recording)
    # MixMonitor writes the RIFF sizes as it closes the file, a moment after the Hangup
    wait_until(lambda: wav_closed(heard), timeout=5, message="MixMonitor file, closed")
    with wave.open(str(heard)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds > 0.2 and max(map(abs, samples)) > 1000  # the beep, not silence


async def test_test_agent_answers_then_hangs_up(pbx, pbx_ami):
    call = await originate_local(pbx_ami, "s", "w10", context="test-agent")
    response = await pbx_ami.wait_event(call.is_originate_response(), timeout=10)
    assert response["Response"] == "Success"
    hangup = await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=5)  # default w1-h
    assert hangup["Cause"] == "16"


# -- the carrier: a second Asterisk playing the PSTN over real SIP ------------------------

async def test_pbx_calls_the_carrier_and_it_answers(pbx, carrier, pbx_ami, carrier_ami):
    call = await originate_local(pbx_ami, "+12025550100", "w1-h", context="outbound")
    response = await pbx_ami.wait_event(call.is_originate_response(), timeout=15)
    assert response["Response"] == "Success"
    dial_end = await pbx_ami.wait_event(event_is("DialEnd", Uniqueid=call.callee_id), timeout=5)
    assert dial_end["DialStatus"] == "ANSWER"
    assert dial_end["DestChannel"].startswith("PJSIP/carrier-")
    arrived = await carrier_ami.wait_event(
        lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == "+12025550100", timeout=5)
    assert arrived["Channel"].startswith("PJSIP/pbx-")
    await pbx_ami.wait_event(call.is_hangup_of("callee"), timeout=15)


async def test_carrier_records_what_it_hears_and_sends_dtmf(pbx, carrier, pbx_ami, carrier_ami):
    await carrier_ami.action("Setvar", {"Variable": "STEPS_12025550101", "Value": "w1-d5"})
    call = await originate_local(pbx_ami, "+12025550101", "w1.5-pbeep-w1-h", context="outbound")
    dtmf = await pbx_ami.wait_event(
        lambda e: e.get("Event") == "DTMFEnd" and e.get("Channel", "").startswith("PJSIP/carrier-")
        and e.get("Direction") == "Received", timeout=10)
    assert dtmf["Digit"] == "5"  # sent by the carrier as RFC 4733, seen by our PBX
    await carrier_ami.wait_event(  # MixMonitor closes its file as the channel goes
        lambda e: e.get("Event") == "Hangup" and e.get("Channel", "").startswith("PJSIP/pbx-"),
        timeout=15)
    await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=5)
    recordings = wait_until(lambda: carrier.finished_recordings("12025550101-*.wav"),
                            timeout=5, message="the carrier's recording")
    with wave.open(str(recordings[0])) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    assert max(map(abs, samples)) > 1000  # the beep the PBX side played crossed RTP


async def test_carrier_busy_number_is_busy(pbx, carrier, pbx_ami):
    call = await originate_local(pbx_ami, "+12025550110", "w1", context="outbound")
    response = await pbx_ami.wait_event(call.is_originate_response(), timeout=15)
    assert response["Response"] == "Failure"
    assert response["Reason"] == "5"  # AST_CONTROL_BUSY


async def test_carrier_calls_in_over_sip_with_rfc4733_dtmf(pbx, carrier, carrier_ami, agi_port):
    async with FakeEngine(agi_port, answer_and_get_digit) as engine:
        call = await originate_local(carrier_ami, "+19495551234", "w1-d1", context="to-pbx")
        await carrier_ami.wait_event(call.is_hangup_of("callee"), timeout=30)
    assert [s["agi_extension"] for s in engine.sessions] == ["+19495551234"]
    assert engine.sessions[0]["agi_channel"].startswith("PJSIP/carrier-")
    assert engine.results == ["1"]
