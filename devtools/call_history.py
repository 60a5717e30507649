"""A generated history of inbound calls through an IVR, for the stats test and benchmark.

Each call is a random walk: at every gather a caller presses a key of the menu, a wrong key,
or nothing, or hangs up; the path is what trunx.ivr.simulate (the engine's own state
machine) makes of those inputs, with a random share of each prompt heard. The rows are
written as the engine writes a call's record (agi_server.calls.record.save_rows: the Call
row and, in its transaction, the visit rows the stats sum). Alongside the rows the
generator keeps its own tally of what it chose (`Tally`), so a test can check the stats
against a count that never went through trunx.ivr.stats.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agi_server.calls.record import save_rows
from trunx.ivr import events, simulate
from trunx.ivr.program import Gather, Program
from trunx.models import new_uuid

SETTINGS = events.Settings(trunk_endpoint="carrier", transfer_dial="",
                           transfer_timeout=30, fallback_audio="fallback",
                           polite_hangup_audio="goodbye", agents=True)
PROMPT_SECONDS = 4.0


@dataclass
class Tally:
    calls: int = 0
    entered: Counter = field(default_factory=Counter)     # calls that entered each node
    visits: Counter = field(default_factory=Counter)
    keys: Counter = field(default_factory=Counter)        # (node, key)
    timeouts: Counter = field(default_factory=Counter)
    invalid: Counter = field(default_factory=Counter)
    hangups: Counter = field(default_factory=Counter)     # caller hang-ups, by node
    outcomes: Counter = field(default_factory=Counter)
    invalid_keys: Counter = field(default_factory=Counter)   # (node, key)
    exits: Counter = field(default_factory=Counter)       # (node, route, next node)
    heard: dict = field(default_factory=dict)             # node -> [endpos of each prompt]

    def __add__(self, other: Tally) -> Tally:
        """Two histories' tallies as one (a window or a version spanning both)."""
        heard = {n: self.heard.get(n, []) + other.heard.get(n, [])
                 for n in {*self.heard, *other.heard}}
        return Tally(self.calls + other.calls, *(getattr(self, f) + getattr(other, f)
                     for f in ("entered", "visits", "keys", "timeouts", "invalid", "hangups",
                               "outcomes", "invalid_keys", "exits")), heard)


def _inputs(program: Program, rng: random.Random, n: int = 12) -> list[str]:
    """Plausible inputs: mostly menu keys, sometimes nothing, a wrong key or a hang-up."""
    keys = sorted({k for node in program.nodes.values() if isinstance(node, Gather)
                   for k in node.gather})
    out = []
    for _ in range(n):
        r = rng.random()
        out.append("hangup" if r < 0.04 else "timeout" if r < 0.15 else
                   "0" if r < 0.22 else rng.choice(keys))
    return out


def walks(program: Program, count: int, seed: int = 7):
    """(path, outcome, visits) of `count` random calls."""
    rng = random.Random(seed)
    world = simulate.World(seconds=lambda file: PROMPT_SECONDS)
    for _ in range(count):
        result = simulate.run(program, SETTINGS, _inputs(program, rng), world)
        path = []
        for step in result["path"]:
            if step["event"] == "prompt":   # heard a random share of the prompt
                step = {**step, "endpos": int(PROMPT_SECONDS * 8000 * rng.random())}
            path.append({**step, "t": 0.0})
        yield path, result["outcome"], result["nodes"]


def generate(database, account_id: str, program: Program, count: int, *,
             start: datetime, seed: int = 7, batch: int = 500) -> Tally:
    """Write `count` inbound call rows for `program`, one a second from `start`."""
    tally = Tally()
    rows = []
    for i, (path, outcome, visits) in enumerate(walks(program, count, seed)):
        tally.calls += 1
        tally.outcomes[outcome] += 1
        for node in {v["node"] for v in visits}:
            tally.entered[node] += 1
        for v in visits:
            tally.visits[v["node"]] += 1
            if v.get("result") == "digits":
                tally.keys[(v["node"], v["digits"])] += 1
            elif v.get("result") == "timeout":
                tally.timeouts[v["node"]] += 1
            elif v.get("result") == "invalid":
                tally.invalid[v["node"]] += 1
                tally.invalid_keys[(v["node"], v["digits"])] += 1
            if "result" in v and "next" in v:
                route = v["digits"] if v["result"] == "digits" else v["result"]
                tally.exits[(v["node"], route, v["next"])] += 1
        for step in path:
            if step["event"] == "prompt":
                tally.heard.setdefault(step["node"], []).append(step["endpos"])
        if outcome == "caller-hangup":
            tally.hangups[visits[-1]["node"]] += 1
        at = start + timedelta(seconds=i)
        rows.append(dict(id=new_uuid(), account=account_id, direction="inbound",
                         status="completed", ivr_id=program.ivr_id,
                         ivr_version=program.version, path=path, outcome=outcome,
                         created_at=at, answered_at=at, ended_at=at, duration=1.0))
        if len(rows) >= batch:
            save_rows(database, rows)
            rows = []
    if rows:
        save_rows(database, rows)
    return tally
