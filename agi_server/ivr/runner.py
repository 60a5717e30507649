"""The IVR runner: the small async driver of the state machine (trunx.ivr.machine).

It feeds the machine events and carries out the effects it returns on the call: path steps
and the outcome go to the call record, prompts, waits and dials to the channel facade
(through agi_server.calls.control, which live actions use too), the do-not-call check, the
suppression and the AI bridge to the services the engine passed in. The channel is the
call session's (agi_server.calls.session.LiveChannel), so prompts and waits serve live
actions. A caller hanging up surfaces as AGIHangup from the channel and ends the walk in
the engine, not here. A prompt Asterisk does not have is logged, counted
(`stats["prompt_missing"]`) and reported to the machine, which goes on without it.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agi_server.agi.errors import HangupInWait
from agi_server.calls import control
from agi_server.calls.record import CallRecord
from trunx import redis_schema
from trunx.ivr import machine as m
from trunx.ivr import transfer_target
from trunx.ivr.program import Program
from trunx.logs import NODE

log = logging.getLogger(__name__)

ALL_DTMF = m.ALL_DTMF


@dataclass
class Services:
    """What the runner needs from the engine, passed in."""
    config: object
    suppress: Callable[[CallRecord, str], Awaitable[bool]]
    redis: object                                  # redis.asyncio client
    db: Callable[..., Awaitable]                   # runs a blocking database call
    # (channel, record, agent id) -> the AI result {status, endReason, ...}
    bridge_agent: Callable[..., Awaitable[dict]] | None = None
    # told of each node the call enters (the engine keeps the path in the live index, so
    # another engine can close the call with it if this one dies)
    entered: Callable[[CallRecord], None] | None = None
    stats: Counter = field(default_factory=Counter)
    settings: m.Settings = field(init=False)

    def __post_init__(self):
        agents = self.bridge_agent is not None and bool(self.config.ultravox_api_key)
        self.settings = m.Settings.from_config(self.config, agents=agents)


class IvrRunner:
    def __init__(self, channel, program: Program, record: CallRecord, services: Services):
        self.ch = channel
        self.program = program
        self.record = record
        self.svc = services

    async def run(self, start: str | None = None) -> None:
        """Walk the tree from its entry, or from `start` (a caller an AI agent sent back)."""
        # Every call walks this loop once per event: names are bound once, and the two
        # effects nearly every event asks for (a prompt, a wait) are carried out inline.
        machine = m.Machine(self.program, self.svc.settings)
        send, step, ch = machine.send, self.record.step, self.ch
        Step, Finish, Play, WaitDigit = m.Step, m.Finish, m.Play, m.WaitDigit
        PromptEnded, Digit, play, ask = m.PromptEnded, m.Digit, control.play, control.ask
        event = m.Started(start)
        while event is not None:     # None: the machine hung up
            effects, event = send(event), None
            for effect in effects:
                kind = type(effect)
                if kind is Step:
                    step(effect.node, effect.event, **effect.data)
                    if effect.event == "enter":
                        NODE.set(effect.node)      # log lines name the node (trunx/logs.py)
                        if self.svc.entered is not None:
                            self.svc.entered(self.record)
                elif kind is Play:
                    if effect.wait is None:
                        played = await play(ch, effect.file, effect.escape)
                    else:        # prompt + first wait in one command: no key falls between
                        try:
                            played = await ask(ch, effect.file, effect.escape, effect.wait)
                        except HangupInWait as gone:      # the prompt was heard: say so
                            self._heard(machine, gone.endpos)
                            raise
                    event = (self._missing(effect, machine) if played.missing
                             else PromptEnded(played.key, played.endpos,
                                              effect.wait is not None))
                elif kind is WaitDigit:
                    event = Digit(await ch.wait_for_digit(effect.timeout))
                elif kind is Finish:
                    self.record.finish(effect.outcome, effect.reason)
                else:        # the one effect whose result is the next event
                    event = await self._do(effect)

    def _heard(self, machine: m.Machine, endpos: int | None) -> None:
        """The path of a question whose prompt played out before the caller hung up in its
        wait: the prompt step, as a prompt then a wait would have left it."""
        for effect in machine.send(m.PromptEnded("", endpos)):
            if type(effect) is m.Step:
                self.record.step(effect.node, effect.event, **effect.data)

    def _missing(self, effect, machine: m.Machine):
        self.svc.stats["prompt_missing"] += 1
        log.warning("call %s: IVR %s v%s node %s: no sound %r; going on without it",
                    self.record.id, self.program.ivr_id, self.program.version,
                    machine.name, effect.file)
        return m.PromptMissing()

    async def _do(self, effect):
        """Carry out a rarer effect; returns the event it produced (None: the walk is
        over)."""
        kind = type(effect)
        if kind is m.Hangup:
            await self.ch.hangup()
            return None
        if kind is m.Suppress:
            return m.Suppressed(await self.svc.suppress(self.record, effect.node))
        if kind is m.CheckDnc:
            return m.DncChecked(await control.is_suppressed(
                self.program.account, effect.number, redis=self.svc.redis, db=self.svc.db))
        if kind is m.Dial:
            result = await control.dial(self.ch, effect.target, effect.timeout)
            return m.DialEnded(result.status)
        if kind is m.BridgeAgent:
            result = await self.svc.bridge_agent(self.ch, self.record, effect.agent)
            return m.AgentEnded(result.get("status"), result.get("endReason"),
                                result.get("movedTo"))
        if kind is m.FetchDefault:
            target = await self._default_transfer() or {}
            return m.DefaultTarget(to=target.get("to"), agent=target.get("agent"))
        raise TypeError(f"unknown effect {effect!r}")

    async def _default_transfer(self) -> dict | None:
        """The account's default transfer target, as published; the database if Redis
        cannot answer."""
        account = self.program.account
        try:
            return transfer_target.parse(
                await self.svc.redis.get(redis_schema.default_transfer_key(account)))
        except Exception as exc:
            log.warning("call %s: default transfer target not read from Redis (%s)",
                        self.record.id, exc)
        return transfer_target.as_target(await self.svc.db(_stored_default, account))


def _stored_default(account_id: str) -> str | None:
    from trunx.models import Account

    row = Account.get_or_none(Account.id == account_id)
    return row.default_transfer if row is not None else None
