"""Walk an IVR without a phone: the same Program and the same state machine
(trunx.ivr.machine) as a live call, fed a designer's inputs instead of a channel's events.

`run(program, settings, inputs, world)` answers the path a call would take. Each input is
what the caller does at the next gather: a key sequence ("1", "12#"), "timeout" (no key)
or "hangup". Prompts play out whole (their length comes from `world.seconds`), then the
keys come one by one, as on a call where the caller waits for the menu; a key sequence that
is no complete key ends with the gather's timeout, as it would on a call. What a call would
learn from the outside (the do-not-call list, the account's default transfer target) comes
from `world`; a transfer is taken as answered and an AI agent's call as ended normally
(`assumed` in the answer says so). The walk's steps are the machine's own Step effects,
so the answer's `path` has exactly the events a call record stores (minus timings).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from trunx.errors import invalid
from trunx.ivr import machine as m
from trunx.ivr.program import Gather, Program

SAMPLE_RATE = 8000            # Asterisk reports endpos in 8 kHz samples
MAX_INPUTS = 100
_KEYS = re.compile(r"^[0-9*#]{1,10}$")
TIMEOUT, HANGUP = "timeout", "hangup"


@dataclass
class World:
    """What the walk asks of the outside, passed in (the API reads the database)."""
    seconds: Callable[[str], float | None]        # a prompt's length, None if unknown
    suppressed: Callable[[str], bool] = lambda number: False
    default_target: dict | None = None            # {"to"} or {"agent"}, as published


def check_inputs(inputs) -> list[str]:
    """The request's `inputs`, checked: a list of key sequences, "timeout" or "hangup"."""
    if not isinstance(inputs, list):
        raise invalid("inputs", "invalid-inputs", "inputs is a list of key sequences, "
                      '"timeout" or "hangup"')
    if len(inputs) > MAX_INPUTS:
        raise invalid("inputs", "too-many-inputs", f"at most {MAX_INPUTS} inputs")
    for i, value in enumerate(inputs):
        if not isinstance(value, str) or not (value in (TIMEOUT, HANGUP) or _KEYS.match(value)):
            raise invalid(f"inputs[{i}]", "invalid-input",
                          'each input is 1-10 of the keys 0-9 * #, "timeout" or "hangup"')
    return list(inputs)


def _audio_name(file: str | None) -> str | None:
    return file.rsplit("/", 1)[-1] if file else None


class _Walk:
    def __init__(self, program: Program, settings: m.Settings, inputs: list[str],
                 world: World):
        self.program, self.world = program, world
        self.machine = m.Machine(program, settings)
        self.inputs = list(inputs)
        self.used = 0
        self.pending = ""        # the keys of the input being typed
        self.path: list[dict] = []
        self.outcome: tuple[str, str | None] | None = None
        self.assumed: list[str] = []

    def _prompt(self, file: str) -> m.PromptEnded:
        seconds = self.world.seconds(file)
        endpos = round(seconds * SAMPLE_RATE) if seconds is not None else None
        return m.PromptEnded("", endpos)

    def _next_input(self) -> str | None:
        if self.used >= len(self.inputs):
            return None
        self.used += 1
        return self.inputs[self.used - 1]

    def _digit(self) -> m.Digit | None:
        """The next key the caller presses ('' = the wait times out); None: the caller
        hangs up (an input said so, or there are none left)."""
        if not self.pending:
            if self.machine.digits:          # typed all it meant to: the wait times out
                return m.Digit("")
            value = self._next_input()
            if value is None or value == HANGUP:
                return None
            if value == TIMEOUT:
                return m.Digit("")
            self.pending = value
        key, self.pending = self.pending[0], self.pending[1:]
        return m.Digit(key)

    def run(self) -> str:
        """Walk until the machine hangs up or the caller does; returns how it ended."""
        event = m.Started()
        while True:
            nxt = None
            for effect in self.machine.send(event):
                kind = type(effect)
                if kind is m.Step:
                    if effect.event == "enter":
                        self.pending = ""    # keys typed past a complete key are dropped
                    self.path.append({"node": effect.node, "event": effect.event,
                                      **effect.data})
                elif kind is m.Finish:
                    if self.outcome is None:
                        self.outcome = (effect.outcome, effect.reason)
                elif kind is m.Play:
                    nxt = self._prompt(effect.file)
                elif kind is m.WaitDigit:
                    nxt = self._digit()
                    if nxt is None:
                        return "caller-hangup"
                elif kind is m.Hangup:
                    return "ivr-hangup"
                else:
                    nxt = self._do(effect)
            event = nxt

    def _do(self, effect):
        kind = type(effect)
        if kind is m.Suppress:
            self.assumed.append("the caller's number is known, so it is suppressed")
            return m.Suppressed(True)
        if kind is m.CheckDnc:
            return m.DncChecked(bool(self.world.suppressed(effect.number)))
        if kind is m.FetchDefault:
            target = self.world.default_target or {}
            return m.DefaultTarget(to=target.get("to"), agent=target.get("agent"))
        if kind is m.Dial:
            self.assumed.append("the transfer is answered")
            return m.DialEnded("ANSWER")
        if kind is m.BridgeAgent:
            self.assumed.append("the AI agent's call ends normally")
            return m.AgentEnded("ended", None)
        raise TypeError(f"unknown effect {effect!r}")


def run(program: Program, settings: m.Settings, inputs: list[str], world: World) -> dict:
    walk = _Walk(program, settings, inputs, world)
    ended = walk.run()
    if ended == "caller-hangup" and walk.outcome is None:
        walk.outcome = ("caller-hangup", None)
    outcome, reason = walk.outcome or ("completed", None)
    return {"ivr": program.ivr_id, "version": program.version, "inputs": list(inputs),
            "nodes": _visits(program, walk.path, world), "path": walk.path,
            "outcome": outcome, "reason": reason,
            "unusedInputs": walk.inputs[walk.used:], "assumed": walk.assumed}


def _visits(program: Program, path: list[dict], world: World) -> list[dict]:
    """The path grouped by node visit: each node's prompt with its length, and for a gather
    what it made of the input (digits, timeout or invalid) and where it went next."""
    visits: list[dict] = []
    for step in path:
        event = step["event"]
        if event == "enter":
            node = program.nodes[step["node"]]
            visit = {"node": step["node"],
                     "type": "gather" if isinstance(node, Gather) else node.action}
            if node.audio:
                visit["prompt"] = {"audio": _audio_name(node.audio),
                                   "seconds": world.seconds(node.audio)}
            visits.append(visit)
        elif not visits:
            continue
        elif event in ("digits", "timeout", "invalid"):
            visits[-1]["result"] = event
            if "digits" in step:
                visits[-1]["digits"] = step["digits"]
        elif event in ("prompt", "prompt-missing", "played"):
            visits[-1]["heard"] = event != "prompt-missing"
        else:
            visits[-1].setdefault("events", []).append(
                {k: v for k, v in step.items() if k != "node"})
    for visit, after in zip(visits, visits[1:], strict=False):
        visit["next"] = after["node"]
    return visits
