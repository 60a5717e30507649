"""Attended transfer: the caller waits on music on hold while trunx calls the target (the
consult leg); then the API completes it (the caller is bridged to the target) or cancels it
(the consult leg hangs up and the caller is back where the call was).

The transfer's state (GET .../actions/{transfer_uuid}):

    consulting   `consult` says ringing, then answered; the caller hears music on hold
    completed    the caller was bridged to the target: the call is transferred
    canceled     POST .../transfer/{id}/cancel: the consult leg hung up, caller back
    failed       the target did not answer (`dial_status`), hung up while consulted, or the
                 call was bridged elsewhere: the caller is back on the call

It runs in the call's AGI session, which must be free (a bridged call answers 409):

    SET MUSIC ON              the caller's hold music: a generator, so AGI stays free
    AMI Originate PJSIP/<to>@<trunk> into [trunx-consult]   the leg answers and waits there
    WAIT FOR DIGIT slices     the session waits; complete/cancel stop the wait (ControlPlayback)
    complete                  SET MUSIC OFF, EXEC Bridge(<consult leg>,x): AGI holds the
                              call until the bridge ends; BridgeEnter (AMI) is the hand-off
    cancel / failure          AMI Hangup of the consult leg, SET MUSIC OFF; the IVR's prompt
                              or wait (or the outbound hold) goes on
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from agi_server.agi import commands
from agi_server.agi.errors import AGIHangup
from agi_server.calls import bridged

log = logging.getLogger(__name__)

COMPLETE, CANCEL = "transfer_complete", "transfer_cancel"
SLICE = 1.0          # seconds per WAIT FOR DIGIT while the caller is on hold


async def consult(runner, s, action_id: str, p: dict) -> tuple[str, dict]:
    ex = runner.bridged_actions
    to = p["to"]
    if ex is None or not ex.ami.connected.is_set():
        return "failed", {"code": "ami-unavailable",
                          "message": "an attended transfer needs AMI, which is not connected"}
    if await runner.suppressed(s.account, to):
        return "failed", {"code": "number-suppressed",
                          "message": f"{to} is on this account's do-not-call list"}
    helper = bridged.helper_id("consult")
    timeout = int(runner.config.transfer_timeout)
    fields = bridged.target_leg(to, runner.config.trunk_endpoint, helper, timeout,
                                p.get("caller_id"))
    await runner.state(action_id, status="consulting", consult="ringing")
    await s.raw.run(commands.set_music(True))
    leg_gone = ex.expect("Hangup", helper)
    named = ex.expect("Newchannel", helper)       # its name, to hang it up while ringing
    dialing = asyncio.ensure_future(ex.dial_target(fields, helper, timeout))
    target, music = None, True
    try:
        while True:
            asked = s.take(lambda c: c.get("action") == "hangup")
            if asked is not None:
                if s.on_hangup:
                    s.on_hangup(asked.get("reason", "api"))
                await s.raw.hangup()
                raise AGIHangup("hangup requested")
            command = s.take(lambda c: c.get("action") in (COMPLETE, CANCEL)
                             and c.get("id") == action_id)
            if command is not None and command["action"] == CANCEL:
                log.info("call %s: consult with %s canceled", s.call_id, to)
                return "canceled", {"to": to, "consult": "answered" if target else "ringing"}
            if dialing.done() and target is None:
                event = dialing.result()
                status = bridged.dial_status(event)
                if status != "ANSWER":
                    return "failed", {"code": "transfer-failed", "dial_status": status,
                                      "message": f"the consult call to {to} ended with "
                                                 f"{status}; the caller is back on the call"}
                target = event.get("Channel") or helper
                await runner.state(action_id, consult="answered")
            if leg_gone.done():
                return "failed", {"code": "consult-ended", "message": f"{to} hung up during "
                                  "the consult; the caller is back on the call"}
            if command is not None and target is not None:       # complete
                music = False
                await s.raw.run(commands.set_music(False))
                return await _complete(runner, ex, s, action_id, p, target)
            if command is not None:
                log.info("call %s: complete before %s answered: ignored", s.call_id, to)
            await s.wait(SLICE)
    finally:
        gone = leg_gone.done()
        ex.forget("Hangup", helper)
        ex.forget("Newchannel", helper)
        leg = target or (named.result().get("Channel") if named.done() else None)
        if not s.handed_off and not gone:
            if leg:          # answered and not bridged, or still ringing: send it away
                await ex.hangup(leg)
            else:
                await ex.hangup_id(helper)
        if not dialing.done():
            dialing.cancel()
        if music and not getattr(s.raw.transport, "hung_up", False):
            with contextlib.suppress(AGIHangup):
                await s.raw.run(commands.set_music(False))


async def _complete(runner, ex, s, action_id: str, p: dict, target: str):
    entered = ex.expect("BridgeEnter", s.uniqueid)
    entered.add_done_callback(
        lambda f: None if f.cancelled() else runner.run_soon(runner.answered(s, action_id, p)))
    try:
        reply = await s.raw.exec("Bridge", bridged.channel(target), "x")
        code = _code(reply)
        outcome = None if code == -1 else await s.raw.get_variable("BRIDGERESULT")
    finally:
        ex.forget("BridgeEnter", s.uniqueid)
    if s.handed_off or outcome == "SUCCESS":
        if not s.handed_off:                 # AMI missed BridgeEnter: say it now, late
            await runner.answered(s, action_id, p)
        with contextlib.suppress(AGIHangup):
            await s.raw.hangup()             # the bridge is over: so is the call
        return "completed", {"to": p["to"], "dial_status": "ANSWER"}
    if code == -1:
        raise AGIHangup("Bridge: channel hung up")
    return "failed", {"code": "transfer-failed", "bridge_result": outcome or "UNKNOWN",
                      "message": "the caller could not be bridged to the target; the caller "
                                 "is back on the call"}


def _code(reply) -> int:
    try:
        return int(reply.result)
    except (AttributeError, TypeError, ValueError):
        return 0
