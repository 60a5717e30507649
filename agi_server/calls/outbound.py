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
"""
from __future__ import annotations

import logging
import time

from agi_server.agi.errors import AGIHangup
from agi_server.ai import bridge as ai_bridge
from trunx import logs

log = logging.getLogger(__name__)

SLICE = 1.0   # seconds per WAIT FOR DIGIT while holding a plain call


class OutboundRoute:
    def __init__(self, config, tracker, registry):
        self.config = config
        self.tracker = tracker
        self.registry = registry         # agi_server.calls.registry.Registry
        self.sessions = 0

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
                if call.ai is not None:
                    # the bridge's Dial puts the session in bridged mode: actions reach
                    # the call over AMI (agi_server.calls.bridged)
                    await ai_bridge.run_ai_call(session.channel, dict(call.row), self.config)
                    await ch.hangup()
                else:
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
