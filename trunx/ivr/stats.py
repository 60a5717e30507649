"""Per-node analytics of an IVR: SQL sums over the visit rows its calls were reduced to
when their records were written (trunx.ivr.visits, the CallNodeVisit table).

`compute` answers GET /ivr/:id/stats in a few queries, whatever the number of calls:

- one GROUP BY over the IVR's visit rows in the window, with the version as a filter,
  read from a covering index (CallNodeVisit.counted holds what a row counts, so the groups
  are the distinct (node, route, key, edge in, prompt file, ...) combinations, a few
  hundred at most, each with its count). From them:
  for each node, calls that entered and visits, keys pressed by key, timeouts, invalid
  keys, caller hang-ups in the node, exits to each target by route; the calls and their
  outcomes; the funnel from the entry to each action node. Edge counts are keyed as
  trunx.ivr.diagram draws them.
- for each node that played a prompt, its median share heard, by sorting that node's
  shares in SQL (index (account, ivr_id, node, endpos, ...)) and reading the one or two in
  the middle (LIMIT/OFFSET): the share is of the asset's length, or, for a sound with no
  stored length, of the longest part any call in the window heard (a prompt played out
  whole reports its full length).

Only portable SQL (CASE, CAST, COUNT/SUM/MAX, LIMIT/OFFSET): SQLite and PostgreSQL alike.
docs/benchmarks.md has the figures.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import peewee
from peewee import fn

from trunx.ivr.program import Action, Program
from trunx.ivr.visits import uncounted
from trunx.models import CallNodeVisit as V

SAMPLE_RATE = 8000


def _window(query, account_id, ivr_id, since, until, version):
    query = query.where(V.account == account_id, V.ivr_id == ivr_id)
    if since is not None:
        query = query.where(V.started >= since)
    if until is not None:
        query = query.where(V.started < until)
    if version is not None:
        query = query.where(V.ivr_version == version)
    return query


def groups_query(account_id, ivr_id, since, until, version) -> peewee.Query:
    """The visit rows' groups in the window, each (counted, rows, prompts heard, longest).

    All of the IVR's calls: grouped in the order of the (account, ivr_id, counted, ...)
    index, so SQLite sums as it walks it, sorting nothing. A window: grouped by version
    too, an order no index has, so the plan that wins reads only the window's range of
    the (account, ivr_id, started, ...) index and sorts that (else SQLite would walk all
    of the IVR's history to skip what is outside the window). A test holds both plans."""
    group = (V.counted,) if since is None and until is None else (V.ivr_version, V.counted)
    query = _window(V.select(V.counted, fn.COUNT(peewee.SQL("*")), fn.COUNT(V.endpos),
                             fn.MAX(V.endpos)), account_id, ivr_id, since, until, version)
    return query.group_by(*group)


def compute(database, account_id: str, ivr_id: str, program: Program | None,
            seconds: Callable[[str], float | None] = lambda file: None, *, since=None,
            until=None, version=None) -> dict:
    """The stats of the IVR's calls that started in [since, until), of one version or all.
    `program` (the version asked for, else the current one) orders the nodes and names the
    action nodes; `seconds(file)` gives a prompt's length, for the share heard."""
    sql, params = groups_query(account_id, ivr_id, since, until, version).sql()
    # in the order of the text, whatever the database's collation: equal counts then
    # list in the same order on SQLite and PostgreSQL
    groups = sorted(database.execute_sql(sql, params).fetchall())
    calls = 0
    visits: Counter = Counter()          # node -> times entered
    routes: Counter = Counter()          # (node, event, digits) for digits/timeout/invalid
    exits: Counter = Counter()           # (node, route, target)
    reached: Counter = Counter()         # node -> calls that entered it at least once
    hangups: Counter = Counter()         # node -> calls the caller hung up in
    outcomes: Counter = Counter()
    prompts: dict = {}                   # (node, file) -> [prompts heard, longest heard]
    nodes = set()
    for text, n, heard, longest in groups:
        (node, entered, first, route, key, came_from, came_by, file, hangup, outcome,
         head) = uncounted(text)
        if head:
            calls += n
            outcomes[outcome] += n
        if node is None:
            continue
        nodes.add(node)
        if entered:
            visits[node] += n
        if first:
            reached[node] += n
        if route is not None:
            routes[(node, route, key)] += n
        if came_by is not None:
            exits[(came_from, came_by, node)] += n
        if hangup:
            hangups[node] += n
        if heard:
            seen = prompts.setdefault((node, file), [0, 0])
            seen[0] += heard
            seen[1] = max(seen[1], longest)
    medians = {name: _median(database, account_id, ivr_id, since, until, version, name,
                             lengths)
               for name, lengths in _lengths(prompts, seconds).items()}
    return _answer(program, calls, nodes, visits, routes, exits, reached, hangups, outcomes,
                   medians)


def _lengths(prompts: dict, seconds) -> dict[str, list[tuple[str | None, float, int]]]:
    """node -> (file, its length in samples, prompts heard) for the files it played."""
    out: dict = defaultdict(list)
    for (node, file), (count, longest) in prompts.items():
        known = seconds(file) if file else None
        length = known * SAMPLE_RATE if known else longest
        if length:       # nothing heard of a sound of unknown length: no share to give
            out[node].append((file, float(length), count))
    return out


def _median(database, account_id, ivr_id, since, until, version, node, lengths) -> float:
    """The median share heard of `node`'s prompts: the middle one or two of its shares,
    in the order the database sorts them. A node that played one file (the usual case) is
    sorted by what was heard, the order of its index, so only the middle is read."""
    count = sum(n for _, _, n in lengths)
    if len(lengths) == 1:
        file, length, _ = lengths[0]
        which = V.file.is_null() if file is None else V.file == file
        order = V.endpos
    else:
        order = peewee.Case(None, [
            ((V.file.is_null() if file is None else V.file == file) & (V.endpos < length),
             peewee.Cast(V.endpos, "DOUBLE PRECISION") / length)
            for file, length, _ in lengths], 1.0)
        files = [f for f, _, _ in lengths if f is not None]
        which = V.file.in_(files) if files else None
        if len(files) < len(lengths):       # a prompt with no file counts too
            which = V.file.is_null() if which is None else (which | V.file.is_null())
    query = _window(V.select(order, V.file), account_id, ivr_id, since, until, version).where(
        V.node == node, V.endpos.is_null(False), which).order_by(order).limit(
        2 - count % 2).offset((count - 1) // 2)
    sql, params = query.sql()
    middle = database.execute_sql(sql, params).fetchall()
    if len(lengths) == 1:
        length = lengths[0][1]
        middle = [(endpos / length if endpos < length else 1.0, file)
                  for endpos, file in middle]
    return sum(share for share, _ in middle) / len(middle)


def _answer(program, calls, nodes, visits, routes, exits, reached, hangups, outcomes,
            medians) -> dict:
    names = list(program.nodes) if program is not None else []
    names += sorted(nodes - set(names))
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
            "heardMedian": (round(medians[name], 3) if name in medians else None),
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
