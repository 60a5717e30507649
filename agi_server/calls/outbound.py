"""The `outbound` FastAGI route: the engine holds an answered outbound call until it ends.

Asterisk runs AGI(agi://.../outbound) in [trunx-outbound] once the callee answers (see
dialplan/extensions.conf); the channel's Uniqueid is the call id (Originate ChannelId).
An AI call (one with an `ai` config) is handed to agi_server.ai.bridge.run_ai_call, as an
action session whose Dial to the agent takes actions over AMI. A plain
call is held: the route waits in one-second WAIT FOR DIGIT slices, so a hangup is seen
within a second and, between slices, it serves the call's command queue (`hangup`, put
there by the tracker). A plain call is also an action session (agi_server.calls.actions):
its waits serve live-call actions (play, speak, dtmf, record, transfer) as they arrive.
DELETE and maxDuration normally end a call through AMI (the tracker); the queue is the path
that still works when AMI is down.
"""
from __future__ import annotations

import logging
import time

from agi_server.agi.errors import AGIHangup
from agi_server.ai import bridge as ai_bridge

log = logging.getLogger(__name__)

SLICE = 1.0   # seconds per WAIT FOR DIGIT while holding a plain call


class OutboundRoute:
    def __init__(self, config, tracker, live_calls=None):
        self.config = config
        self.tracker = tracker
        self.live_calls = live_calls     # agi_server.calls.actions.LiveCalls, or None
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
            if call.ai is not None and self.live_calls is None:
                await ai_bridge.run_ai_call(ch, dict(call.row), self.config)
                await ch.hangup()
            elif call.ai is not None:
                # an action session too (hook): the bridge's Dial puts it in bridged mode,
                # so actions reach the call over AMI (agi_server.calls.bridged)
                async with self.live_calls.session(
                        ch, call.id, call.account, "outbound",
                        numbers=(call.from_number, call.to_number),
                        on_handoff=lambda at: self._transferred(call, at),
                        on_hangup=lambda reason: self._asked(call, reason)) as session:
                    await ai_bridge.run_ai_call(session.channel, dict(call.row), self.config)
                    await ch.hangup()
            elif self.live_calls is None:
                await self.hold(ch, call)
            else:
                async with self.live_calls.session(
                        ch, call.id, call.account, "outbound",
                        numbers=(call.from_number, call.to_number),
                        on_handoff=lambda at: self._transferred(call, at),
                        on_hangup=lambda reason: self._asked(call, reason)) as session:
                    await self.hold(session.channel, call)
        except AGIHangup:
            pass
        finally:
            await self.tracker.session_ended(call)

    async def _transferred(self, call, at: float) -> None:
        """A transfer was answered: for us the call ends here (the tracker ignores the
        channel's later Hangup)."""
        call.hangup_reason = "transferred"
        await self.tracker.finish(call, at)

    @staticmethod
    def _asked(call, reason: str) -> None:
        call.hangup_reason = call.hangup_reason or reason

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
