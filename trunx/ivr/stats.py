"""Per-node analytics of an IVR, computed from the call records (Call.path, written by the
engine's agi_server.calls.record when an inbound call ends).

Each call's path is first reduced (`reduce_path`) to its walk, the (node, event, key) steps
that count, with its outcome, plus what it heard of each prompt. Calls walk few distinct
ways through a menu, so the walks are counted (a Counter of equal walks) and each distinct
walk is tallied once, times its count: for each node, calls that entered and visits, keys
pressed by key, timeouts, invalid keys, caller hang-ups in the node, exits to each target by
route; the funnel from the entry to each action node; and the median share of each prompt
heard (of the asset's length, or, for a sound with no stored length, of the longest part
any call heard). Edge counts are keyed as trunx.ivr.diagram draws them.

`Stats(database)` answers for the API and keeps (per worker) the reduction of every finished
call it has read, keyed by the call's id and `ended_at` (a row written early, for a call
bridged to an AI agent, is rewritten when the call ends and then read again): a request reads
the ids of the IVR's calls in the window through the (account, ivr_id, created_at) index and
parses only the paths it has not seen. Parsing the JSON was most of the time
(docs/benchmarks.md has the figures).

Path events read here are the machine's (trunx.ivr.machine): enter, prompt (endpos),
digits, timeout, invalid, ...; a call's last node is where a caller hang-up happened.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable

from trunx.ivr.program import Action, Program
from trunx.models import Call

try:    # several times faster than json on these small documents; optional
    import orjson
    _loads = orjson.loads
except ImportError:     # pragma: no cover
    _loads = json.loads

SAMPLE_RATE = 8000
MAX_CACHED = 500_000          # reduced calls a worker keeps (~100 bytes each); then cleared
_FETCH = 500                  # ids per IN (...) when fetching unseen paths

# A walk: ((node, event, key) for enter/digits/timeout/invalid steps, ...), outcome
Walk = tuple[tuple[tuple[str, str, str], ...], str | None]
# What a call heard: (((node, file), endpos) for each prompt step, ...)
Heard = tuple[tuple[tuple[str, str | None], int], ...]


def reduce_path(path, outcome) -> tuple[Walk, Heard] | None:
    """A call's path (JSON text or the list) reduced to what the stats count; None for a
    call with no path."""
    if path.__class__ is not list:
        if not path:
            return None
        path = _loads(path)
    if not path:
        return None
    steps, heard = [], []
    for step in path:
        event = step["event"]
        if event == "enter":
            steps.append((step["node"], "enter", ""))
        elif event == "prompt":
            endpos = step.get("endpos")
            if endpos is not None:
                heard.append(((step["node"], step.get("file")), endpos))
        elif event == "digits" or event == "invalid":
            steps.append((step["node"], event, step.get("digits", "")))
        elif event == "timeout":
            steps.append((step["node"], "timeout", ""))
    return (tuple(steps), outcome), tuple(heard)


def _filters(q, account_id, ivr_id, since, until, version):
    q = q.where(Call.account == account_id, Call.ivr_id == ivr_id,
                Call.direction == "inbound")
    if since is not None:
        q = q.where(Call.created_at >= since)
    if until is not None:
        q = q.where(Call.created_at < until)
    if version is not None:
        q = q.where(Call.ivr_version == version)
    return q


class Stats:
    """The stats of an IVR's calls, remembering each finished call's reduction."""

    def __init__(self, database):
        self._database = database
        self._seen: dict[str, tuple] = {}     # call id -> (ended_at, Walk, Heard)
        self._walks: dict = {}                # one copy of each distinct walk (and key)

    def reductions(self, account_id: str, ivr_id: str, *, since=None, until=None,
                   version=None) -> list[tuple[Walk, Heard]]:
        q = _filters(Call.select(Call.id, Call.ended_at), account_id, ivr_id, since, until,
                     version)
        sql, params = q.sql()
        rows = self._database.execute_sql(sql, params).fetchall()
        seen, out, missing = self._seen, [], []
        for call_id, ended in rows:
            hit = seen.get(call_id)
            if hit is not None and hit[0] == ended:
                out.append((hit[1], hit[2]))
            else:
                missing.append(call_id)
        if len(seen) + len(missing) > MAX_CACHED:
            seen.clear()
            self._walks.clear()
        for start in range(0, len(missing), _FETCH):
            chunk = missing[start:start + _FETCH]
            q = Call.select(Call.id, Call.ended_at, Call.path, Call.outcome).where(
                Call.id.in_(chunk))
            sql, params = q.sql()
            for call_id, ended, path, outcome in self._database.execute_sql(sql, params):
                reduced = reduce_path(path, outcome)
                if reduced is None:
                    continue
                walk = self._walks.setdefault(reduced[0], reduced[0])
                # one copy of each (node, file) key too: less memory, and counting them
                # later hashes a tuple whose hash is already cached
                heard = tuple((self._walks.setdefault(key, key), endpos)
                              for key, endpos in reduced[1])
                if ended is not None:
                    seen[call_id] = (ended, walk, heard)
                out.append((walk, heard))
        return out


def aggregate_reduced(reductions: list[tuple[Walk, Heard]], program: Program | None,
                      seconds: Callable[[str], float | None] = lambda file: None) -> dict:
    """The stats of calls reduced by `reduce_path`. `program` (the version asked for, else
    the current one) orders the nodes and names the action nodes; `seconds(file)` gives a
    prompt's length, for the share heard."""
    walks = Counter(walk for walk, _ in reductions)
    visits: Counter = Counter()          # node -> times entered
    routes: Counter = Counter()          # (node, event, digits) for digits/timeout/invalid
    exits: Counter = Counter()           # (node, route, target)
    reached: Counter = Counter()         # node -> calls that entered it at least once
    hangups: Counter = Counter()         # node -> calls the caller hung up in
    outcomes: Counter = Counter()
    for (steps, outcome), n in walks.items():      # each distinct walk once, times n
        outcomes[outcome] += n
        entered = set()
        current = route = None
        for node, event, key in steps:
            if event == "enter":
                visits[node] += n
                entered.add(node)
                if route is not None:
                    exits[(current, route, node)] += n
                current, route = node, None
            else:
                routes[(node, event, key)] += n
                route = key if event == "digits" else event
        for node in entered:
            reached[node] += n
        if outcome == "caller-hangup" and current is not None:
            hangups[current] += n
    heard: dict[tuple, list[int]] = defaultdict(list)   # (node, file) -> endpos each time
    for _, prompts in reductions:
        for key, endpos in prompts:
            heard[key].append(endpos)
    shares: dict[str, list[float]] = defaultdict(list)
    for (name, file), samples in heard.items():
        known = seconds(file) if file else None
        # a sound that is no asset has no stored length: a prompt played out whole reports
        # its full length, so the longest seen stands for it
        length = known * SAMPLE_RATE if known else max(samples)
        if length:
            shares[name] += [n / length if n < length else 1.0 for n in samples]
    return _answer(program, len(reductions), visits, routes, exits, reached, hangups,
                   outcomes, shares)


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
