"""Live actions on a call whose AGI session is blocked in a Dial (an IVR transfer, an agent
or AI bridge, a live transfer being dialled), carried out over AMI instead of AGI.

    dtmf        PlayDTMF Receive=true on the call's channel, one digit per 400 ms (200 ms
                tone): Asterisk takes the digit as if the call's own party had pressed it,
                so the bridge carries it to the other party (without Receive, PlayDTMF
                would send it to the call's own party, who is not the one being navigated)
    play/speak  Originate a helper Local channel: its ;2 half runs ChanSpy(<uniqueid>,qBESu)
                on the call's channel (barge: both parties of the bridge hear what it
                says; on a call no bridge holds, while the engine listens for a
                machine, qwESu: whisper, its own party hears it), its ;1 half plays
                the staged file `loop` times ([trunx-inject]
                play). A new play/speak hangs the helper up (interrupted); on speak the
                call's own party pressing a key does too (AMI DTMFEnd, as on the AGI path)
    record      Originate a helper whose ;2 half listens (ChanSpy qESu: both directions
                mixed) and whose ;1 half runs MixMonitor on what it hears; stopping hangs
                it up, which closes the file. (AMI MixMonitor needs the `system` class,
                which trunx's AMI user is not given: with it, Originate could run System.)
                A recording started by AGI MixMonitor is stopped by AMI StopMixMonitor
    transfer    Originate the target into [trunx-consult] (it answers and waits); once it
                answers, AMI Bridge moves the call's channel out of its bridge to the
                target and the party it leaves is hung up. A target that does not answer
                changes nothing: the call stays in its bridge ("returned to the call")

The builders are pure and check every value that reaches AMI or the dialplan (channel
names, uniqueids, files, numbers); the executor `BridgedActions` sends them and follows
the helpers by the uniqueids it gives them (ChannelId/OtherChannelId).
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets

from agi_server.calls import control
from trunx.errors import TrunxError
from trunx.phone import is_e164

log = logging.getLogger(__name__)

DTMF_ON_MS = 200
DTMF_PITCH = 0.4          # seconds from one digit to the next: 200 ms tone, 200 ms gap
CONSULT_MAX = 600         # seconds a consult leg waits to be bridged or sent away
# Asterisk's OriginateResponse Reason (AST_CONTROL_*) as Dial would say it
DIAL_STATUS = {1: "CHANUNAVAIL", 3: "NOANSWER", 5: "BUSY", 8: "CONGESTION"}

_CHANNEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9+@._;:/-]{1,200}$")
_UNIQUEID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_FILE = re.compile(r"^/?[A-Za-z0-9_][A-Za-z0-9_./-]{0,250}$")
_DIGIT = re.compile(r"^[0-9*#]$")


class BridgedError(TrunxError):
    """An action that cannot run on the bridged call; `code` goes into the action's state.
    Never an API answer (the action was accepted already), so of no kind."""


# -- checks ----------------------------------------------------------------------------------
def _checked(pattern: re.Pattern, value, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or ".." in value \
            or "," in value:
        raise ValueError(f"not a safe {what}: {value!r}")
    return value


def channel(name) -> str:
    return _checked(_CHANNEL, name, "channel name")


def uniqueid(value) -> str:
    return _checked(_UNIQUEID, value, "uniqueid")


def sound_file(path) -> str:
    """A staged file as Asterisk plays it: no extension needed, no `..`, no commas."""
    return _checked(_FILE, path, "sound file")


def helper_id(prefix: str) -> str:
    return f"trunx-{prefix}-{secrets.token_hex(8)}"


# -- builders: AMI action fields -------------------------------------------------------------
def play_dtmf(chan: str, digit: str, duration_ms: int = DTMF_ON_MS, *,
              receive: bool = True) -> dict:
    """receive: as if the call's own party pressed it (a bridge carries it on); else sent
    to the call's own party (a channel no bridge holds: answering-machine detection)."""
    if not isinstance(digit, str) or not _DIGIT.match(digit):
        raise ValueError(f"not a DTMF digit: {digit!r}")
    fields = {"Channel": channel(chan), "Digit": digit, "Duration": str(int(duration_ms))}
    return {**fields, "Receive": "true"} if receive else fields


def _helper(kind: str, spy_mode: str, call_uniqueid: str, helper: str,
            variables: dict[str, str]) -> list[tuple[str, str]]:
    """Originate Local/<spy_mode>@trunx-spy/n (;2 spies on the call) with ;1 running
    [trunx-inject] <kind>. /n: the Local pair must never optimise itself away."""
    fields = [("Channel", f"Local/{spy_mode}@trunx-spy/n"), ("Context", "trunx-inject"),
              ("Exten", kind), ("Priority", "1"), ("Async", "true"),
              ("Timeout", "10000"), ("CallerID", "trunx"),
              ("ChannelId", uniqueid(helper)), ("OtherChannelId", uniqueid(helper + "-spy")),
              ("Variable", f"TRUNX_SPY={uniqueid(call_uniqueid)}")]
    return fields + [("Variable", f"{k}={v}") for k, v in variables.items()]


def play_helper(call_uniqueid: str, helper: str, file: str, loop: int, *,
                alone: bool = False) -> list:
    """alone: the call is in no bridge (answering-machine detection): whisper to its own
    party, since a barge reaches only the parties of a bridge."""
    if isinstance(loop, bool) or not isinstance(loop, int) or loop < 0:
        raise ValueError(f"not a loop count: {loop!r}")
    return _helper("play", "whisper" if alone else "barge", call_uniqueid, helper,
                   {"TRUNX_FILE": sound_file(file), "TRUNX_LOOP": str(loop)})


def record_helper(call_uniqueid: str, helper: str, file: str, max_seconds: int) -> list:
    return _helper("record", "listen", call_uniqueid, helper,
                   {"TRUNX_RECFILE": sound_file(file),
                    "TRUNX_MAX": str(max(1, int(max_seconds)))})


def target_leg(to: str, trunk: str, helper: str, timeout: int,
               caller_id: str | None = None) -> list:
    """Originate the transfer target over the trunk into [trunx-consult]."""
    fields = [("Channel", control.dial_string(to, trunk)),
              ("Context", "trunx-consult"), ("Exten", "s"), ("Priority", "1"),
              ("Async", "true"), ("Timeout", str(int(timeout) * 1000)),
              ("ChannelId", uniqueid(helper)),
              ("Variable", f"TRUNX_CONSULT_MAX={CONSULT_MAX}")]
    if caller_id is not None:
        if not is_e164(caller_id):
            raise ValueError(f"not an E.164 number: {caller_id!r}")
        fields.append(("CallerID", caller_id))
    return fields


def bridge(chan1: str, chan2: str) -> dict:
    return {"Channel1": channel(chan1), "Channel2": channel(chan2), "Tone": "no"}


def hangup(chan: str) -> dict:
    return {"Channel": channel(chan), "Cause": "16"}


def stop_mixmonitor(chan: str, mixmon_id: str) -> dict:
    return {"Channel": channel(chan), "MixMonitorID": uniqueid(mixmon_id)}


def getvar(chan: str, name: str) -> dict:
    if not re.match(r"^[A-Z_]{1,32}$", name):
        raise ValueError(f"not a variable name: {name!r}")
    return {"Channel": channel(chan), "Variable": name}


# -- the executor ----------------------------------------------------------------------------
class BridgedActions:
    """Sends the actions above and waits for what they cause (by uniqueid)."""

    def __init__(self, ami):
        self.ami = ami
        self._waiters: dict[tuple[str, str], list[asyncio.Future]] = {}
        ami.add_listener(self._on_event)

    def _on_event(self, event: dict) -> None:
        if event.get("Event") == "DTMFEnd" and event.get("Direction") != "Received":
            return                      # only a key the call's party pressed
        key = (event.get("Event", ""), event.get("Uniqueid", ""))
        for fut in self._waiters.pop(key, ()):
            if not fut.done():
                fut.set_result(event)

    def expect(self, event: str, uid: str) -> asyncio.Future:
        """A future for the next `event` of channel `uid` (register before acting)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((event, uid), []).append(fut)
        return fut

    def forget(self, event: str, uid: str) -> None:
        for fut in self._waiters.pop((event, uid), ()):
            fut.cancel()

    async def dtmf(self, chan: str, digits: str, *, receive: bool = True) -> None:
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(DTMF_PITCH)      # the tones' own pacing, not a wait
            await self.ami.action("PlayDTMF", play_dtmf(chan, digit, receive=receive))

    async def start_helper(self, fields: list, helper: str) -> dict:
        """Originate a helper and wait until it runs; BridgedError if it did not."""
        answered = self.expect("OriginateResponse", helper)
        try:
            await self.ami.action("Originate", fields)
            event = await asyncio.wait_for(answered, 15)
        except BaseException:
            self.forget("OriginateResponse", helper)
            raise
        if event.get("Response") != "Success":
            raise BridgedError("helper-failed", "Asterisk could not start the helper "
                               f"channel (reason {event.get('Reason')})")
        return event

    async def hangup(self, chan: str) -> None:
        try:
            await self.ami.action("Hangup", hangup(chan))
        except Exception as exc:          # gone already: what we wanted
            log.info("hangup %s: %s", chan, exc)

    async def hangup_id(self, uid: str) -> None:
        """Hang up a channel we originated, by the uniqueid we gave it (its name may not
        be known yet: a leg still ringing)."""
        try:
            await self.ami.action("Hangup", {"Channel": uniqueid(uid), "Cause": "16"})
        except Exception as exc:
            log.info("hangup %s: %s", uid, exc)

    async def bridge_peer(self, chan: str) -> str | None:
        reply = await self.ami.action("Getvar", getvar(chan, "BRIDGEPEER"), check=False)
        value = (reply.get("Value") or "").strip()
        return value if value and _CHANNEL.match(value) else None

    async def dial_target(self, fields: list, helper: str, timeout: float) -> dict:
        """Originate a target leg; its OriginateResponse (Response Success or Failure)."""
        done = self.expect("OriginateResponse", helper)
        try:
            await self.ami.action("Originate", fields)
            return await asyncio.wait_for(done, timeout + 15)
        except BaseException:
            self.forget("OriginateResponse", helper)
            raise


def dial_status(event: dict) -> str:
    if event.get("Response") == "Success":
        return "ANSWER"
    try:
        return DIAL_STATUS.get(int(event.get("Reason") or 0), "FAILED")
    except ValueError:
        return "FAILED"


# -- the actions, on a bridged call ----------------------------------------------------------
# Each takes the ActionRunner (state, recorder, config, hand-off), the CallSession and the
# action's params, and returns (status, result) as the AGI handlers do.
async def act(runner, s, kind: str, action_id: str, p: dict) -> tuple[str, dict]:
    ex: BridgedActions = runner.bridged_actions
    if ex is None or not ex.ami.connected.is_set():
        raise BridgedError("ami-unavailable", "the call is bridged and AMI, which acts on "
                           "bridged calls, is not connected")
    if kind == "dtmf":
        # in a Dial the bridge carries a "received" digit to the other party; a channel
        # held alone (answering-machine detection) sends it to its own party
        await ex.dtmf(s.channel_name, p["digits"], receive=not s.alone)
        return "completed", {"digits": p["digits"], "via": "bridge"}
    if kind in ("play", "speak"):
        return await _play(ex, s, action_id, p, kind == "speak")
    if kind == "record":
        return await _record(runner, ex, s, action_id, p)
    if kind == "record_stop":
        return await _record_stop(runner, ex, s, p.get("recording", ""),
                                  p.get("reason", "api"))
    if kind == "transfer":
        if p.get("mode") == "attended":
            raise BridgedError("call-bridged", "an attended transfer needs the call out of "
                               "its bridge; use a blind transfer")
        return await _transfer(runner, ex, s, action_id, p)
    raise BridgedError("unknown-action", f"no action {kind!r}")


async def _play(ex: BridgedActions, s, action_id: str, p: dict, speak: bool):
    if s.bridge_play is not None:                 # play and speak interrupt each other
        s.bridge_play["stopped"] = True
        await ex.hangup(s.bridge_play["channel"])
    helper = helper_id("play")
    loop = 1 if speak else int(p.get("loop", 1))
    mine = {"channel": helper, "stopped": False}
    ended = ex.expect("Hangup", helper)
    call_gone = ex.expect("Hangup", s.uniqueid)
    key = ex.expect("DTMFEnd", s.uniqueid) if speak else None
    audio = s.audio if s.alone else None
    if audio is not None:           # whisper mixes into frames written: keep some coming
        audio.talk = True
    try:
        event = await ex.start_helper(
            play_helper(s.uniqueid, helper, p["file"], loop, alone=s.alone), helper)
        mine["channel"] = event.get("Channel") or helper
        s.bridge_play = mine
        await asyncio.wait([w for w in (ended, call_gone, key) if w is not None],
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        if audio is not None:
            audio.talk = False
        for name, uid in (("Hangup", s.uniqueid), ("DTMFEnd", s.uniqueid), ("Hangup", helper)):
            ex.forget(name, uid)
        if s.bridge_play is mine:
            s.bridge_play = None
    if call_gone.done() and not ended.done():
        raise BridgedError("call-ended", "the call ended")
    if key is not None and key.done() and not ended.done():
        await ex.hangup(mine["channel"])
        return "interrupted", {"by": "dtmf", "digit": key.result().get("Digit"), "plays": 0}
    if mine["stopped"]:
        return "interrupted", {"by": "action"}
    return "completed", {"plays": loop}


async def _record(runner, ex: BridgedActions, s, rec_id: str, p: dict):
    from trunx import recordings
    path = recordings.asterisk_spool_file(runner.config, rec_id)
    await asyncio.to_thread(_makedirs, runner.config.recording_spool_path)
    helper = helper_id("rec")
    max_length = int(p.get("max_length", 14400))
    event = await ex.start_helper(record_helper(s.uniqueid, helper, path, max_length + 5),
                                  helper)
    timer = asyncio.get_running_loop().call_later(
        max_length, s.submit, {"action": "record_stop", "id": "",
                               "params": _json({"recording": rec_id, "reason": "max-length"})})
    s.recordings[rec_id] = {"helper": event.get("Channel") or helper, "timer": timer}
    await runner.recording_started(rec_id)
    return "recording", {"format": p.get("format"), "via": "bridge"}


async def _record_stop(runner, ex: BridgedActions, s, rec_id: str, reason: str):
    info = s.recordings.pop(rec_id, None)
    if info is None:
        return "completed", {"recording_uuid": rec_id, "note": "not recording"}
    info["timer"].cancel()
    if "helper" in info:
        await ex.hangup(info["helper"])
    else:                                   # started by AGI MixMonitor before the Dial
        await ex.ami.action("StopMixMonitor", stop_mixmonitor(s.channel_name, info["mixmon"]))
    runner.recorder.finish_later(rec_id, reason)
    return "completed", {"recording_uuid": rec_id}


async def _transfer(runner, ex: BridgedActions, s, action_id: str, p: dict):
    to = p["to"]
    if await runner.suppressed(s.account, to):
        return "failed", {"code": "number-suppressed",
                          "message": f"{to} is on this account's do-not-call list"}
    helper = helper_id("xfer")
    timeout = int(runner.config.transfer_timeout)
    event = await ex.dial_target(target_leg(to, runner.config.trunk_endpoint, helper, timeout,
                                            p.get("caller_id")), helper, timeout)
    status = dial_status(event)
    if status != "ANSWER":
        log.info("call %s: transfer to %s failed (%s); the bridge goes on", s.call_id, to,
                 status)
        return "failed", {"code": "transfer-failed", "dial_status": status,
                          "message": f"the transfer to {to} ended with {status}; the caller "
                                     "is back on the call"}
    target = event.get("Channel") or helper
    peer = await ex.bridge_peer(s.channel_name)
    await ex.ami.action("Bridge", bridge(s.channel_name, target))
    if peer and peer != target:
        await ex.hangup(peer)                 # the party the call leaves
    await runner.answered(s, action_id, p)
    return "completed", {"to": to, "dial_status": "ANSWER", "via": "bridge"}


def _makedirs(path: str) -> None:
    import os
    os.makedirs(path, exist_ok=True)


def _json(value) -> str:
    import json
    return json.dumps(value)
