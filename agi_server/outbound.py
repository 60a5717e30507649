"""The `outbound` FastAGI route: the engine holds an answered outbound call until it ends.

Asterisk runs AGI(agi://.../outbound) in [trunx-outbound] once the callee answers (see
dialplan/extensions.conf); the channel's Uniqueid is the call id (Originate ChannelId).
An AI call (one with an `ai` config) is handed to agi_server.ai_bridge.run_ai_call. A plain
call is held: the route waits in one-second WAIT FOR DIGIT slices, so a hangup is seen
within a second and, between slices, it serves the call's command queue (fed by the
engine's command stream: `hangup` now; the live-call actions of a later issue go here).
DELETE and maxDuration normally end a call through AMI (the tracker); the queue is the path
that still works when AMI is down.
"""
from __future__ import annotations

import logging
import time

from agi_server import ai_bridge
from agi_server.errors import AGIHangup

log = logging.getLogger(__name__)

SLICE = 1.0   # seconds per WAIT FOR DIGIT while holding a plain call


class OutboundRoute:
    def __init__(self, config, tracker):
        self.config = config
        self.tracker = tracker
        self.sessions = 0

    async def __call__(self, ch) -> None:
        call_id = ch.env.get("agi_uniqueid", "")
        call = await self.tracker.session_started(call_id)
        if call is None:
            log.warning("outbound AGI for unknown call %r: hanging up", call_id)
            await ch.hangup()
            return
        self.sessions += 1
        try:
            if call.ai is not None:
                await ai_bridge.run_ai_call(ch, dict(call.row), self.config)
                await ch.hangup()
            else:
                await self.hold(ch, call)
        except AGIHangup:
            pass
        finally:
            await self.tracker.session_ended(call)

    async def hold(self, ch, call) -> None:
        deadline = None
        if call.max_duration:
            start = call.answered_ts or time.time()
            deadline = time.monotonic() + max(0.0, start + call.max_duration - time.time())
        while True:
            while not call.commands.empty():
                command = call.commands.get_nowait()
                if command.get("action") == "hangup":
                    call.hangup_reason = call.hangup_reason or command.get("reason", "api")
                    await ch.hangup()
                    return
                log.info("call %s: command %r not supported on a plain call", call.id,
                         command.get("action"))
            budget = SLICE
            if deadline is not None:
                budget = min(budget, deadline - time.monotonic())
                if budget <= 0:
                    call.hangup_reason = call.hangup_reason or "max-duration"
                    await ch.hangup()
                    return
            await ch.wait_for_digit(budget)
