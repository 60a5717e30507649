"""Per-node analytics of an IVR, computed from the call records (Call.path, written by the
engine's agi_server.calls.record when an inbound call ends).

`query(account, ivr_id, since, until, version)` reads only the `path` and `outcome` columns
of the IVR's inbound calls, through the (account, ivr_id, created_at) index, without peewee
models (the JSON is parsed by orjson when it is installed: most of the time goes there).
`aggregate(paths, seconds)` is pure: for each node, calls that entered and visits, the
median share of its prompt heard, keys pressed by key, timeouts, invalid keys, caller
hang-ups in the node, exits to each target by route; and the funnel from the entry to each
action node. Edge counts keyed as trunx.ivr.diagram draws them.

Path events read here are the machine's (trunx.ivr.machine): enter, prompt (endpos),
digits, timeout, invalid, ...; a call's last node is where a caller hang-up happened.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from trunx.ivr.program import Action, Program
from trunx.models import Call

try:    # several times faster than json on these small documents; optional
    import orjson
    _loads = orjson.loads
except ImportError:     # pragma: no cover
    _loads = json.loads

SAMPLE_RATE = 8000
ROUTES = ("digits", "timeout", "invalid")


def query(database, account_id: str, ivr_id: str, *, since: datetime | None = None,
          until: datetime | None = None, version: int | None = None) -> list[tuple]:
    """(path JSON text, outcome) of the IVR's inbound calls in [since, until), raw: the
    text is parsed by `aggregate`, not by peewee's JSONField."""
    q = (Call.select(Call.path, Call.outcome)
         .where(Call.account == account_id, Call.ivr_id == ivr_id,
                Call.direction == "inbound"))
    if since is not None:
        q = q.where(Call.created_at >= since)
    if until is not None:
        q = q.where(Call.created_at < until)
    if version is not None:
        q = q.where(Call.ivr_version == version)
    sql, params = q.sql()
    return database.execute_sql(sql, params).fetchall()


def _node_stats() -> dict:
    return {"entered": 0, "visits": 0, "shares": [], "keys": Counter(), "timeouts": 0,
            "invalid": Counter(), "hangups": 0, "exits": Counter()}


def aggregate(rows: Iterable[tuple], program: Program | None,
              seconds: Callable[[str], float | None] = lambda file: None) -> dict:
    """The stats of `rows` ((path JSON text or list, outcome) each). `program` (the version
    asked for, else the current one) orders the nodes and names the action nodes;
    `seconds(file)` gives a prompt's length, for the share heard."""
    nodes: dict[str, dict] = defaultdict(_node_stats)
    edges: Counter = Counter()
    outcomes: Counter = Counter()
    reached: Counter = Counter()       # calls that entered each node at least once
    lengths: dict[str, float | None] = {}
    calls = 0
    for path, outcome in rows:
        if isinstance(path, (str, bytes)):
            path = _loads(path)
        if not path:
            continue
        calls += 1
        outcomes[outcome or "completed"] += 1
        seen = set()
        current = route = None
        for step in path:
            event, name = step["event"], step["node"]
            if event == "enter":
                s = nodes[name]
                s["visits"] += 1
                if name not in seen:
                    seen.add(name)
                    s["entered"] += 1
                if current is not None and route is not None:
                    nodes[current]["exits"][(route, name)] += 1
                    edges[(current, route)] += 1
                current, route = name, None
            elif event == "prompt":
                file, endpos = step.get("file"), step.get("endpos")
                if file not in lengths:
                    lengths[file] = seconds(file) if file else None
                length = lengths[file]
                if endpos is not None and length:
                    nodes[name]["shares"].append(min(1.0, endpos / (length * SAMPLE_RATE)))
            elif event == "digits":
                nodes[name]["keys"][step.get("digits", "")] += 1
                route = step.get("digits", "")
            elif event == "timeout":
                nodes[name]["timeouts"] += 1
                route = "timeout"
            elif event == "invalid":
                nodes[name]["invalid"][step.get("digits", "")] += 1
                route = "invalid"
        for name in seen:
            reached[name] += 1
        if outcome == "caller-hangup" and current is not None:
            nodes[current]["hangups"] += 1
    return _answer(program, calls, nodes, edges, outcomes, reached)


def _answer(program, calls, nodes, edges, outcomes, reached) -> dict:
    order = list(program.nodes) if program is not None else []
    order += sorted(set(nodes) - set(order))
    out_nodes = []
    for name in order:
        s = nodes.get(name) or _node_stats()
        exits = defaultdict(dict)
        for (route, target), n in s["exits"].items():
            exits[target][route] = n
        out_nodes.append({
            "node": name, "entered": s["entered"], "visits": s["visits"],
            "heardMedian": (round(statistics.median(s["shares"]), 3)
                            if s["shares"] else None),
            "keys": dict(s["keys"].most_common()), "timeouts": s["timeouts"],
            "invalid": sum(s["invalid"].values()),
            "invalidKeys": dict(s["invalid"].most_common()),
            "hangups": s["hangups"], "exits": dict(exits)})
    entry = program.entry if program is not None else None
    funnel = []
    if program is not None:
        start = reached.get(entry, 0)
        funnel.append({"node": entry, "calls": start, "share": 1.0 if start else None})
        for name, node in program.nodes.items():
            if isinstance(node, Action):
                n = reached.get(name, 0)
                funnel.append({"node": name, "action": node.action, "calls": n,
                               "share": round(n / start, 3) if start else None})
    return {"calls": calls, "outcomes": dict(outcomes.most_common()), "nodes": out_nodes,
            "edges": [{"from": a, "route": r, "calls": n}
                      for (a, r), n in sorted(edges.items())],
            "funnel": funnel}


def edge_counts(stats: dict) -> dict[tuple[str, str], int]:
    """The answer's edges as trunx.ivr.diagram's `counts`."""
    return {(e["from"], e["route"]): e["calls"] for e in stats["edges"]}
