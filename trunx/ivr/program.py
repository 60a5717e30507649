"""The IVR program: a validated tree compiled into the frozen, typed form the engine runs.

Both processes import it. The API compiles a tree (trunx.ivr.store: `compile_program`
takes the `Checked` that trunx.ivr.tree.validate returned, so nothing unvalidated can be
compiled) and publishes `encode(program)`; the engine's tree cache decodes each published
version once (`decode`) and its state machine walks the Program for every call.

Field names are the definition's own (seed page 001): a node's `audio` is the same field,
resolved to what Asterisk plays (a staged asset's path, or a sound name), and every
default is filled in, so the engine does no lookups and no defaulting at call time.

The stored form (Redis, and IvrVersion.compiled in the database) is plain JSON:

    {"format": 2, "account", "ivr_id", "version", "entry",
     "nodes": {name: {"audio", "gather", "timeout", "max_tries", "max_digits",
                      "timeout_node"?, "invalid_node"?, "invalid_audio"?}
                   | {"action", "audio"?, "to"?, "agent"?, "timeout"?}}}

Format 1 (before this module: `kind`, `play`, `invalid_play`) is still read, so a database
written by an older trunx resyncs as it is.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trunx.ivr.tree import Checked

FORMAT = 2


@dataclass(frozen=True, slots=True)
class Gather:
    """A menu: play `audio` (any key cuts it short), then read keys until one is complete."""
    audio: str
    gather: Mapping[str, str]          # DTMF key -> node name
    timeout: float                     # seconds to wait for each key
    max_tries: int                     # timeouts/invalid keys on this node before hanging up
    max_digits: int
    timeout_node: str | None = None    # None: replay this node
    invalid_node: str | None = None    # None: replay this node
    invalid_audio: str | None = None
    # every proper prefix of a key: after one of these, a longer key may still come
    prefixes: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "gather", MappingProxyType(dict(self.gather)))
        object.__setattr__(self, "prefixes", frozenset(
            key[:n] for key in self.gather for n in range(1, len(key))))

    def complete(self, digits: str) -> bool:
        """True when `digits` is a key and no longer key starts with it."""
        return digits in self.gather and digits not in self.prefixes


@dataclass(frozen=True, slots=True)
class Action:
    """A terminal node: optional `audio`, then transfer, hangup or suppress."""
    action: str                        # transfer | hangup | suppress
    audio: str | None = None
    to: str | None = None              # transfer: an E.164 number
    agent: str | None = None           # transfer: an AI agent id
    timeout: float | None = None       # transfer: seconds to ring; None: transfer_timeout

    @property
    def bare(self) -> bool:
        """A transfer naming no target: the account's default (or the server's) decides."""
        return self.action == "transfer" and not self.to and not self.agent


Node = Gather | Action


@dataclass(frozen=True, slots=True)
class Program:
    account: str
    ivr_id: str
    version: int
    entry: str
    nodes: Mapping[str, Node]

    def __post_init__(self):
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))

    def bare_transfers(self) -> list[str]:
        return [name for name, node in self.nodes.items()
                if isinstance(node, Action) and node.bare]


def compile_program(checked: Checked, resolve_audio: Callable[[str], str], *,
                    gather_timeout: float, gather_max_tries: int,
                    account: str, ivr_id: str, version: int) -> Program:
    """The Program of a tree that trunx.ivr.tree.validate accepted. `resolve_audio(ref)`
    gives what Asterisk plays for an audio reference."""
    if checked.tree is None or not checked.ok:
        raise ValueError("only a tree that validated can be compiled")
    nodes: dict[str, Node] = {}
    for name, node in checked.tree["nodes"].items():
        audio = resolve_audio(node["audio"]) if node.get("audio") else None
        if "gather" in node:
            keys = node["gather"]
            nodes[name] = Gather(
                audio=audio, gather=keys,
                timeout=float(node.get("timeout", gather_timeout)),
                max_tries=int(node.get("max_tries", gather_max_tries)),
                max_digits=int(node.get("max_digits", max(len(k) for k in keys))),
                timeout_node=node.get("timeout_node"),
                invalid_node=node.get("invalid_node"),
                invalid_audio=(resolve_audio(node["invalid_audio"])
                               if node.get("invalid_audio") else None))
        else:
            timeout = node.get("timeout")
            nodes[name] = Action(action=node["action"], audio=audio, to=node.get("to"),
                                 agent=node.get("agent"),
                                 timeout=float(timeout) if timeout is not None else None)
    return Program(account=account, ivr_id=ivr_id, version=version, entry=checked.entry,
                   nodes=nodes)


# -- the stored form ----------------------------------------------------------------------
_GATHER_OPTIONAL = ("timeout_node", "invalid_node", "invalid_audio")
_ACTION_OPTIONAL = ("audio", "to", "agent", "timeout")


def encode(program: Program) -> dict:
    """The JSON-ready form published to Redis and kept in the database."""
    nodes = {}
    for name, node in program.nodes.items():
        if isinstance(node, Gather):
            out = {"audio": node.audio, "gather": dict(node.gather), "timeout": node.timeout,
                   "max_tries": node.max_tries, "max_digits": node.max_digits}
            optional = _GATHER_OPTIONAL
        else:
            out = {"action": node.action}
            optional = _ACTION_OPTIONAL
        for key in optional:
            value = getattr(node, key)
            if value is not None:
                out[key] = value
        nodes[name] = out
    return {"format": FORMAT, "account": program.account, "ivr_id": program.ivr_id,
            "version": program.version, "entry": program.entry, "nodes": nodes}


def decode(data: Mapping) -> Program:
    """`encode`'s inverse (format 1 read too). Raises ValueError on anything else."""
    try:
        legacy = data.get("format") is None
        nodes = {name: _node(raw, legacy) for name, raw in data["nodes"].items()}
        program = Program(account=data["account"], ivr_id=data["ivr_id"],
                          version=int(data["version"]), entry=data["entry"], nodes=nodes)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a compiled IVR program: {exc!r}") from None
    if program.entry not in program.nodes:
        raise ValueError(f"not a compiled IVR program: entry {program.entry!r} is no node")
    return program


def _node(raw: Mapping, legacy: bool) -> Node:
    if legacy:   # format 1: `kind` said which, and the audio fields were named `play`
        raw = {("audio" if k == "play" else "invalid_audio" if k == "invalid_play" else k): v
               for k, v in raw.items() if k != "kind" and v is not None}
    if "gather" in raw:
        return Gather(audio=raw["audio"], gather=raw["gather"], timeout=float(raw["timeout"]),
                      max_tries=int(raw["max_tries"]), max_digits=int(raw["max_digits"]),
                      **{k: raw[k] for k in _GATHER_OPTIONAL if raw.get(k) is not None})
    timeout = raw.get("timeout")
    return Action(action=raw["action"], audio=raw.get("audio"), to=raw.get("to"),
                  agent=raw.get("agent"), timeout=float(timeout) if timeout is not None else None)
