"""Per-node analytics of an IVR, computed from the call records (Call.path, written by the
engine's agi_server.calls.record when an inbound call ends).

`query(account, ivr_id, since, until, version)` reads only the `path` and `outcome` columns
of the IVR's inbound calls, through the (account, ivr_id, created_at) index, without peewee
models (the JSON is parsed by orjson when it is installed: most of the time goes there).
`aggregate(paths, seconds)` is pure: for each node, calls that entered and visits, the
median share of its prompt heard (of the asset's length, or for a sound with no stored
length, of the longest endpos seen), keys pressed by key, timeouts, invalid keys, caller
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


def aggregate(rows: Iterable[tuple], program: Program | None,
              seconds: Callable[[str], float | None] = lambda file: None) -> dict:
    """The stats of `rows` ((path JSON text or list, outcome) each). `program` (the version
    asked for, else the current one) orders the nodes and names the action nodes;
    `seconds(file)` gives a prompt's length, for the share heard."""
    # The loop runs once per path step (a million on 100k calls), so it only counts, into
    # flat Counters keyed by tuples; the answer's shape is made once, afterwards.
    visits: Counter = Counter()          # node -> times entered
    routes: Counter = Counter()          # (node, event, digits) for digits/timeout/invalid
    exits: Counter = Counter()           # (node, route, target)
    reached: Counter = Counter()         # node -> calls that entered it at least once
    hangups: Counter = Counter()         # node -> calls the caller hung up in
    outcomes: Counter = Counter()
    heard: dict[tuple, list[int]] = defaultdict(list)   # (node, file) -> endpos each time
    loads = _loads
    calls = 0
    for path, outcome in rows:
        if path.__class__ is not list:
            if not path:
                continue
            path = loads(path)
        if not path:
            continue
        calls += 1
        outcomes[outcome] += 1
        entered = []
        current = route = None
        for step in path:
            event = step["event"]
            if event == "enter":
                name = step["node"]
                entered.append(name)
                if route is not None:
                    exits[(current, route, name)] += 1
                current, route = name, None
            elif event == "prompt":
                endpos = step.get("endpos")
                if endpos is not None:
                    heard[(step["node"], step.get("file"))].append(endpos)
            elif event == "digits" or event == "invalid":
                digits = step.get("digits", "")
                routes[(step["node"], event, digits)] += 1
                route = digits if event == "digits" else "invalid"
            elif event == "timeout":
                routes[(step["node"], event, "")] += 1
                route = "timeout"
        visits.update(entered)
        reached.update(set(entered))
        if outcome == "caller-hangup" and current is not None:
            hangups[current] += 1
    shares: dict[str, list[float]] = defaultdict(list)
    for (name, file), samples in heard.items():
        known = seconds(file) if file else None
        # a sound that is no asset has no stored length: a prompt played out whole reports
        # its full length, so the longest seen stands for it
        length = known * SAMPLE_RATE if known else max(samples)
        if length:
            shares[name].extend(min(1.0, n / length) for n in samples)
    return _answer(program, calls, visits, routes, exits, reached, hangups, outcomes, shares)


def _answer(program, calls, visits, routes, exits, reached, hangups, outcomes,
            shares) -> dict:
    names = list(program.nodes) if program is not None else []
    names += sorted(set(visits) - set(names))
    per_node = {name: {"keys": Counter(), "timeouts": 0, "invalidKeys": Counter(),
                       "exits": defaultdict(dict)} for name in names}
    for (name, event, digits), n in routes.items():
        s = per_node[name]
        if event == "digits":
            s["keys"][digits] += n
        elif event == "invalid":
            s["invalidKeys"][digits] += n
        else:
            s["timeouts"] += n
    edges: Counter = Counter()
    for (name, route, target), n in exits.items():
        per_node[name]["exits"][target][route] = n
        edges[(name, route)] += n
    out_nodes = []
    for name in names:
        s = per_node[name]
        out_nodes.append({
            "node": name, "entered": reached.get(name, 0), "visits": visits.get(name, 0),
            "heardMedian": (round(statistics.median(shares[name]), 3)
                            if shares.get(name) else None),
            "keys": dict(s["keys"].most_common()), "timeouts": s["timeouts"],
            "invalid": sum(s["invalidKeys"].values()),
            "invalidKeys": dict(s["invalidKeys"].most_common()),
            "hangups": hangups.get(name, 0), "exits": dict(s["exits"])})
    funnel = []
    if program is not None:
        start = reached.get(program.entry, 0)
        funnel.append({"node": program.entry, "calls": start, "share": 1.0 if start else None})
        for name, node in program.nodes.items():
            if isinstance(node, Action):
                n = reached.get(name, 0)
                funnel.append({"node": name, "action": node.action, "calls": n,
                               "share": round(n / start, 3) if start else None})
    return {"calls": calls,
            "outcomes": {k or "completed": v for k, v in outcomes.most_common()},
            "nodes": out_nodes,
            "edges": [{"from": a, "route": r, "calls": n} for (a, r), n in sorted(edges.items())],
            "funnel": funnel}


def edge_counts(stats: dict) -> dict[tuple[str, str], int]:
    """The answer's edges as trunx.ivr.diagram's `counts`."""
    return {(e["from"], e["route"]): e["calls"] for e in stats["edges"]}
