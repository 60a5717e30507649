"""The `outbound` FastAGI route: the engine holds an answered outbound call until it ends.

Asterisk runs AGI(agi://.../outbound) in [trunx-outbound] once the callee answers (see
dialplan/extensions.conf); the channel's Uniqueid is the call id (Originate ChannelId).
An AI call (one with an `ai` config) is handed to agi_server.ai.bridge.run_ai_call, as an
action session whose Dial to the agent takes actions over AMI (agi_server.calls.bridged). A
plain call is held as an action session too (agi_server.calls.registry): the route waits in
one-second WAIT FOR DIGIT slices, so a hangup is seen within a second, and its waits serve
live-call actions (play, speak, dtmf, record, transfer) and a queued hangup as they arrive.
DELETE and maxDuration normally end a call through AMI (the tracker); the session's queue is
the path that still works when AMI is down.

A call placed with machineDetection first listens (agi_server.amd.listen) and reports who
answered (the tracker stores it and sends `call.amd`). Then:

    machine_end_* and a voicemailDrop   the drop plays from its first sample, the call
                                        hangs up: endReason voicemail-dropped
    a machine or a fax on an AI call    hung up (machine-detected / fax-detected): the
                                        agent never starts talking to a machine
    anything else                       the call goes on as it would have
"""
from __future__ import annotations

import logging
import time

from agi_server.agi.errors import AGIHangup
from agi_server.ai import bridge as ai_bridge
from agi_server.amd.listen import Outcome, listen
from trunx import logs

log = logging.getLogger(__name__)

SLICE = 1.0   # seconds per WAIT FOR DIGIT while holding a plain call


class OutboundRoute:
    def __init__(self, config, tracker, registry, sockets=None):
        self.config = config
        self.tracker = tracker
        self.registry = registry         # agi_server.calls.registry.Registry
        self.sockets = sockets           # agi_server.amd.audiosocket.AudioSocketServer
        self.sessions = 0
        self.drops = 0

    async def __call__(self, ch) -> None:
        call_id = ch.env.get("agi_uniqueid", "")
        call = await self.tracker.session_started(call_id)
        if call is not None:
            logs.bind(call_id=call.id, account_id=call.account)
        if call is None:
            log.warning("outbound AGI for unknown call %r: hanging up", call_id)
            await ch.hangup()
            return
        self.sessions += 1
        try:
            async with self.registry.session(
                    call, ch,
                    on_handoff=lambda at: self._transferred(call, at),
                    on_hangup=lambda reason: self._asked(call, reason)) as session:
                amd = call.row.get("amd")
                if amd and self.sockets is not None:
                    if await self._detect(session, call, amd):
                        return
                if call.ai is not None:
                    # the bridge's Dial puts the session in bridged mode: actions reach
                    # the call over AMI (agi_server.calls.bridged)
                    moved = await ai_bridge.run_ai_call(session.channel, dict(call.row),
                                                        self.config)
                    if not moved:     # else the agent's coldTransfer took the callee on
                        await ch.hangup()
                else:
                    await self.hold(session.channel, call)
        except AGIHangup:
            pass
        finally:
            await self.tracker.session_ended(call)

    async def _detect(self, session, call, amd: dict) -> bool:
        """Listen, report, and act on who answered; True: the call is over."""
        outcome = await listen(session, self.sockets, amd)
        answered_by = outcome.answered_by
        await self.tracker.detected(call, answered_by, time.time(),
                                    {**amd, "result": _result(outcome)},
                                    {"machineDetectionDuration": outcome.detection_ms})
        log.info("call %s answered by %s after %d ms of audio", call.id, answered_by,
                 outcome.detection_ms)
        if outcome.hung_up:
            raise AGIHangup("the callee hung up during detection")
        drop = amd.get("drop")
        ch = session.raw
        if drop and answered_by.startswith("machine_end"):
            call.hangup_reason = "voicemail-dropped"
            self.drops += 1
            await ch.play(drop["file"])      # the plain channel: no action interrupts it
            await ch.hangup()
            return True
        if call.ai is not None and (answered_by.startswith("machine") or answered_by == "fax"):
            call.hangup_reason = "fax-detected" if answered_by == "fax" else "machine-detected"
            await ch.hangup()
            return True
        return False

    async def _transferred(self, call, at: float) -> None:
        """A transfer was answered: for us the call ends here (the tracker ignores the
        channel's later Hangup)."""
        call.hangup_reason = "transferred"
        await self.tracker.finish(call, at)

    @staticmethod
    def _asked(call, reason: str) -> None:
        call.hangup_reason = call.hangup_reason or reason

    async def hold(self, ch, call) -> None:
        """Wait until the call ends: a hangup (the callee's, or one queued on the session,
        which raises AGIHangup from the wait) or maxDuration."""
        deadline = None
        if call.max_duration:
            start = call.answered_ts or time.time()
            deadline = time.monotonic() + max(0.0, start + call.max_duration - time.time())
        while True:
            budget = SLICE
            if deadline is not None:
                budget = min(budget, deadline - time.monotonic())
                if budget <= 0:
                    call.hangup_reason = call.hangup_reason or "max-duration"
                    await ch.hangup()
                    return
            await ch.wait_for_digit(budget)


def _result(outcome: Outcome) -> dict:
    return {"answeredBy": outcome.answered_by, "detectionMs": outcome.detection_ms,
            "beepEndMs": outcome.beep_end_ms, "frames": outcome.frames,
            "beeps": [{"endMs": b.end_ms, "hz": round(b.freq_hz), "ms": b.duration_ms}
                      for b in outcome.beeps]}
