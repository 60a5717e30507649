"""The IVR runner: walks one compiled tree (see trunx.ivr.tree.compile_tree) on one call.

A small explicit state machine: the state is the current node; each gather node yields the
next node (a route, a timeout target, a replay or None for a polite hangup) and each action
node ends the walk. Every transition is appended to the call record. The runner talks to
the call only through the channel facade (agi_server.agi.channel.Channel), so it can be driven
by any AGI peer, real or scripted. A caller hanging up surfaces as AGIHangup from the
facade and ends the walk in the session, not here.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agi_server.calls.record import CallRecord

log = logging.getLogger(__name__)

ALL_DTMF = "0123456789*#"
MAX_STEPS = 100   # node visits per call: a tree whose timeouts point at each other ends


@dataclass
class Services:
    """What the runner needs from the engine, passed in."""
    config: object
    suppress: Callable[[CallRecord, str], Awaitable[bool]]
    is_suppressed: Callable[[str, str], Awaitable[bool]]
    # (channel, record, agent id) -> the AI result {status, endReason, ...}
    bridge_agent: Callable[..., Awaitable[dict]] | None = None


class IvrRunner:
    def __init__(self, channel, tree: dict, record: CallRecord, services: Services):
        self.ch = channel
        self.tree = tree
        self.nodes = tree["nodes"]
        self.record = record
        self.svc = services
        self.cfg = services.config
        self.tries: dict[str, int] = {}

    async def run(self) -> None:
        name, steps = self.tree["entry"], 0
        while name is not None:
            steps += 1
            if steps > MAX_STEPS:
                self.record.step(name, "loop-limit")
                await self._polite_hangup("loop-limit")
                return
            node = self.nodes[name]
            self.record.step(name, "enter")
            log.debug("call %s -> node %s", self.record.id, name)
            if node["kind"] == "gather":
                name = await self._gather(name, node)
            else:
                await self._action(name, node)
                name = None

    # -- gather -----------------------------------------------------------------------
    async def _gather(self, name: str, node: dict) -> str | None:
        digits = await self._collect(name, node)
        if digits and digits in node["gather"]:
            self.record.step(name, "digits", digits=digits)
            return node["gather"][digits]
        if not digits:
            self.record.step(name, "timeout")
            target = node.get("timeout_node")
            if target and target != name:
                return target
        else:
            self.record.step(name, "invalid", digits=digits)
        self.tries[name] = self.tries.get(name, 0) + 1
        if self.tries[name] >= node["max_tries"]:
            await self._polite_hangup("max-tries")
            return None
        if digits:
            if node.get("invalid_play"):
                await self.ch.play(node["invalid_play"])
            return node.get("invalid_node") or name
        return name

    async def _collect(self, name: str, node: dict) -> str:
        """Play the prompt with barge-in, then read keys until a key is complete.

        STREAM FILE + WAIT FOR DIGIT rather than GET DATA: Asterisk then reports how much
        of the prompt was heard (endpos), and '#' is a key like any other (GET DATA
        treats it as a terminator)."""
        keys, max_digits, timeout = node["gather"], node["max_digits"], node["timeout"]
        digits = await self.ch.play(node["play"], ALL_DTMF)
        self.record.step(name, "prompt", file=node["play"], endpos=self.ch.last_endpos,
                         barge_in=bool(digits))
        while len(digits) < max_digits and not _complete(digits, keys):
            key = await self.ch.wait_for_digit(timeout)
            if not key:
                break
            digits += key
        return digits

    # -- actions ----------------------------------------------------------------------
    async def _action(self, name: str, node: dict) -> None:
        action = node["action"]
        if node.get("play"):
            await self.ch.play(node["play"])
            self.record.step(name, "played", file=node["play"], endpos=self.ch.last_endpos)
        if action == "hangup":
            self.record.step(name, "hangup")
            self.record.finish("hangup")
        elif action == "suppress":
            done = await self.svc.suppress(self.record, name)
            self.record.step(name, "suppress", added=done)
            self.record.finish("suppressed" if done else "suppress-no-callerid")
        else:
            await self._transfer(name, node)
            return
        await self.ch.hangup()

    async def _transfer(self, name: str, node: dict) -> None:
        to = node.get("to")
        if to:
            if await self.svc.is_suppressed(self.record.account, to):
                self.record.step(name, "transfer-refused", to=to, reason="number-suppressed")
                return await self._fail_transfer("number-suppressed")
            dial = f"PJSIP/{to}@{self.cfg.trunk_endpoint}"
        elif node.get("agent"):
            return await self._transfer_to_agent(name, node["agent"])
        elif self.cfg.transfer_dial:
            dial = self.cfg.transfer_dial
        else:
            self.record.step(name, "transfer-refused", reason="no-transfer-target")
            return await self._fail_transfer("no-transfer-target")
        self.record.step(name, "transfer", dial=dial)
        timeout = int(node.get("timeout", self.cfg.transfer_timeout))
        await self.ch.exec("Dial", dial, str(timeout))
        status = await self.ch.get_variable("DIALSTATUS") or "UNKNOWN"
        self.record.step(name, "transfer-ended", dial_status=status)
        if status == "ANSWER":
            self.record.finish("transferred")
            await self.ch.hangup()
        else:
            await self._fail_transfer(f"dial-{status.lower()}")

    async def _transfer_to_agent(self, name: str, agent: str) -> None:
        """Bridge the caller to an AI agent; the IVR path so far goes along as context."""
        if self.svc.bridge_agent is None or not self.cfg.ultravox_api_key:
            self.record.step(name, "transfer-refused", agent=agent,
                             reason="ultravox-not-configured")
            return await self._fail_transfer("ultravox-not-configured")
        self.record.step(name, "transfer", agent=agent)
        result = await self.svc.bridge_agent(self.ch, self.record, agent)
        status, why = result.get("status"), result.get("endReason")
        self.record.step(name, "transfer-ended", agent=agent, ai_status=status, end_reason=why)
        if status == "ended":
            self.record.finish("transferred")
            await self.ch.hangup()
        else:
            await self._fail_transfer(f"agent-{why or 'failed'}")

    async def _fail_transfer(self, reason: str) -> None:
        self.record.finish("transfer-failed", reason)
        await self.ch.play(self.cfg.fallback_audio)
        await self.ch.hangup()

    async def _polite_hangup(self, reason: str) -> None:
        self.record.finish(reason)
        await self.ch.play(self.cfg.polite_hangup_audio)
        await self.ch.hangup()


def _complete(digits: str, keys) -> bool:
    """True when `digits` is a key and no longer key starts with it."""
    return digits in keys and not any(k != digits and k.startswith(digits) for k in keys)
