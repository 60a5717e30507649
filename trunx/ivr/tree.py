"""IVR trees as data: validation before publish.

A tree is `{"nodes": {name: node}, "start"?: name}` as in the IVR seed page. Validation
collects every problem at once, each with the field path it concerns, so the API can answer
one 422 naming them all. What it returns (`Checked`) is what trunx.ivr.program compiles:
only a tree that validated becomes a Program.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from trunx import patterns
from trunx.phone import is_e164

ACTIONS = ("transfer", "hangup", "suppress")
# whole-string, ASCII-only shapes (trunx/patterns.py; the OpenAPI schemas use the same)
DTMF_KEY = patterns.DTMF_KEYS_RE
NODE_NAME = patterns.NAME_RE
# Audio references end up as STREAM FILE arguments: an asset id, an asset name or a
# relative Asterisk sound name, never a path.
AUDIO_REF = patterns.AUDIO_REF_RE
# every DTMF key, as escape digits: any key cuts a gather's prompt short (the same set as
# agi_server.agi.commands.ALL_DTMF, which the AGI room keeps for itself: it imports nothing)
ALL_DTMF = "0123456789*#"
MAX_NODES = 500

GATHER_FIELDS = {"audio", "gather", "timeout_node", "timeout", "max_tries", "max_digits",
                 "invalid_audio", "invalid_node"}
ACTION_FIELDS = {"action", "audio", "to", "agent", "dial", "timeout"}


@dataclass
class Problem:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class Checked:
    tree: dict | None = None       # the tree validated (set even when it has problems)
    entry: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(tree) -> Checked:
    out = Checked(tree=tree if isinstance(tree, dict) else None)
    bad = out.problems.append
    if not isinstance(tree, dict):
        bad(Problem("", "invalid-type", "the IVR must be a JSON object"))
        return out
    nodes = tree.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        bad(Problem("nodes", "required", "nodes must be a non-empty object of named nodes"))
        return out
    if len(nodes) > MAX_NODES:
        bad(Problem("nodes", "too-many", f"at most {MAX_NODES} nodes"))
        return out
    for name, node in nodes.items():
        _check_node(name, node, nodes, bad)
    start = tree.get("start")
    if start is not None and (not isinstance(start, str) or start not in nodes):
        bad(Problem("start", "unknown-node", f"start names no node: {start!r}"))
    out.entry = start if isinstance(start, str) and start in nodes else next(iter(nodes))
    if out.ok:
        for name in sorted(set(nodes) - _reachable(out.entry, nodes)):
            out.warnings.append(Problem(f"nodes.{name}", "unreachable",
                                        f"node {name!r} cannot be reached from {out.entry!r}"))
    return out


def _check_node(name, node, nodes, bad) -> None:
    where = f"nodes.{name}"
    if not patterns.matches(NODE_NAME, name):
        bad(Problem(where, "invalid-name", "node names are 1-64 of A-Z a-z 0-9 _ . -"))
    if not isinstance(node, dict):
        bad(Problem(where, "invalid-type", "a node must be an object"))
        return
    if "gather" in node and "action" in node:
        bad(Problem(where, "ambiguous-node", "a node has either gather or action, not both"))
        return
    if "gather" in node:
        _check_gather(where, node, nodes, bad)
    elif "action" in node:
        _check_action(where, node, bad)
    else:
        bad(Problem(where, "invalid-node", "a node needs gather (a menu) or action"))


def _check_audio(where, value, bad, required):
    if value is None:
        if required:
            bad(Problem(where, "required", "audio is required"))
    elif (not patterns.matches(AUDIO_REF, value)
          or len(value) > patterns.AUDIO_REF_MAX):
        bad(Problem(where, "invalid-audio",
                    "audio is an asset id, asset name or relative sound name "
                    f"(A-Z a-z 0-9 _ . - /, at most {patterns.AUDIO_REF_MAX}), never a path"))


def _check_target(where, value, nodes, bad):
    if not isinstance(value, str) or value not in nodes:
        bad(Problem(where, "unknown-node", f"target names no node: {value!r}"))


def _check_number(where, value, lo, hi, bad, integer=False):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not lo <= value <= hi:
        bad(Problem(where, "out-of-range", f"must be a number from {lo} to {hi}"))


def _check_gather(where, node, nodes, bad):
    for extra in sorted(set(node) - GATHER_FIELDS):
        bad(Problem(f"{where}.{extra}", "unknown-field", f"gather nodes have no {extra!r}"))
    _check_audio(f"{where}.audio", node.get("audio"), bad, required=True)
    gather = node["gather"]
    if not isinstance(gather, dict) or not gather:
        bad(Problem(f"{where}.gather", "required", "gather maps DTMF keys to node names"))
        return
    for key, target in gather.items():
        if not patterns.matches(DTMF_KEY, key):
            bad(Problem(f"{where}.gather.{key}", "invalid-dtmf",
                        "gather keys are 1-10 of the DTMF digits 0-9 * #"))
        _check_target(f"{where}.gather.{key}", target, nodes, bad)
    for opt in ("timeout_node", "invalid_node"):
        if opt in node:
            _check_target(f"{where}.{opt}", node[opt], nodes, bad)
    if "timeout" in node:
        _check_number(f"{where}.timeout", node["timeout"], 0.5, 60, bad)
    if "max_tries" in node:
        _check_number(f"{where}.max_tries", node["max_tries"], 1, 10, bad, integer=True)
    if "max_digits" in node:
        _check_number(f"{where}.max_digits", node["max_digits"], 1, 20, bad, integer=True)
    _check_audio(f"{where}.invalid_audio", node.get("invalid_audio"), bad, required=False)


def _check_action(where, node, bad):
    for extra in sorted(set(node) - ACTION_FIELDS):
        bad(Problem(f"{where}.{extra}", "unknown-field", f"action nodes have no {extra!r}"))
    action = node["action"]
    if action not in ACTIONS:
        bad(Problem(f"{where}.action", "invalid-action",
                    f"action must be one of {', '.join(ACTIONS)}; got {action!r}"))
    _check_audio(f"{where}.audio", node.get("audio"), bad, required=False)
    if "to" in node and (action != "transfer" or not is_e164(node["to"])):
        bad(Problem(f"{where}.to", "invalid-number", "to is an E.164 number on a transfer"))
    if "agent" in node and (action != "transfer"
                            or not patterns.matches(NODE_NAME, node["agent"])):
        bad(Problem(f"{where}.agent", "invalid-agent", "agent is an agent id on a transfer"))
    if "dial" in node:
        bad(Problem(f"{where}.dial", "not-allowed",
                    "dial strings are server configuration (transfer_dial), not tree data"))
    if "timeout" in node:
        _check_number(f"{where}.timeout", node["timeout"], 1, 300, bad)


def _reachable(entry, nodes) -> set[str]:
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        todo.extend(node.get("gather", {}).values())
        todo.extend(node[k] for k in ("timeout_node", "invalid_node") if k in node)
    return seen


def audio_refs(tree) -> set[str]:
    """Every audio reference in a (valid) tree: what an asset delete must check."""
    refs = set()
    for node in tree.get("nodes", {}).values():
        refs.update(node[k] for k in ("audio", "invalid_audio") if node.get(k))
    return refs

