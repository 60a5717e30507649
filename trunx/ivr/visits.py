"""A call's IVR path reduced, when its record is written, to the rows per-node stats sum.

The engine stores each inbound call's path (agi_server/calls/record.py, `save_rows`); in the
same transaction `replace` writes the call's CallNodeVisit rows (trunx.models), so the stats
(trunx.ivr.stats) are SQL sums over indexed rows and never read a path again.

`reduce_path` is the one reduction: a path becomes its walk, the (node, event, key) steps
that count (enter, digits, timeout, invalid), its outcome, and what the caller heard of each
prompt. `visit_rows` lays a reduction out as rows, one per visit to a node:

    node      entered  first  route    key  came_from  came_by  file  endpos  hangup
    main      1        1      digits   1                        main  9000    0
    sales     1        1      timeout  ""   main       1        sales 1200    0
    sales     1        0                    sales      timeout  sales 500     1

`first` marks the call's first visit to a node (calls that entered it), `came_from`/`came_by`
the edge taken into the visit (the node entered last, and the last route taken since),
`hangup` the visit a caller hung up in. Machine paths (trunx.ivr.machine) have at most one
route and one prompt per visit; anything else (a second route in a visit, a prompt of a
node not being visited) gets a row of its own with `entered` 0, so summing the rows is
exactly counting the walk. Row 0 (the head) carries the call's outcome.

Calls recorded before this table existed are reduced when it is created (`backfill`, from
trunx.db.connect, in the transaction that creates it).
"""
from __future__ import annotations

import functools
import json

from trunx.models import Call, CallNodeVisit

try:    # several times faster than json on these small documents; optional
    import orjson
    _loads = orjson.loads

    def _dumps(value) -> str:
        return orjson.dumps(value).decode()
except ImportError:     # pragma: no cover
    _loads = json.loads

    def _dumps(value) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

# A walk: ((node, event, key) for enter/digits/timeout/invalid steps, ...), outcome
Walk = tuple[tuple[tuple[str, str, str], ...], str | None]
# What a call heard: (((node, file), endpos) for each prompt step, ...)
Heard = tuple[tuple[tuple[str, str | None], int], ...]

# the row's columns after the call's own (call, seq, account, ivr_id, ivr_version, started)
FIELDS = ("node", "entered", "first", "route", "key", "came_from", "came_by", "file",
          "endpos", "hangup", "outcome")
_NODE, _ENTERED, _FIRST, _ROUTE, _KEY, _FROM, _BY, _FILE, _ENDPOS, _HANGUP, _OUTCOME = \
    range(len(FIELDS))
_COLUMNS = ("call_id", "seq", "account", "ivr_id", "ivr_version", "started") + FIELDS + (
    "counted",)
_ROWS_PER_STATEMENT = 50     # x 18 columns: far below SQLite's 32,766 parameters
_BACKFILL_CHUNK = 1_000


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


def _row(node, entered=0, first=0) -> list:
    return [node, entered, first, None, None, None, None, None, None, 0, None]


def visit_rows(reduced: tuple[Walk, Heard]) -> list[list]:
    """A reduction as rows of FIELDS (see the module docstring), the head first."""
    (steps, outcome), heard = reduced
    rows: list[list] = []
    entered: set[str] = set()
    current = route = None        # the node entered last; the route taken since
    visit = None                  # its row, while it can still take a route
    for node, event, key in steps:
        if event == "enter":
            visit = _row(node, 1, 0 if node in entered else 1)
            if route is not None:
                visit[_FROM], visit[_BY] = current, route
            rows.append(visit)
            entered.add(node)
            current, route = node, None
            continue
        if visit is None or visit[_NODE] != node or visit[_ROUTE] is not None:
            visit = _row(node)        # a route with no visit of its own to join
            rows.append(visit)
        visit[_ROUTE], visit[_KEY] = event, key
        route = key if event == "digits" else event
    if outcome == "caller-hangup" and current is not None:
        next(row for row in reversed(rows) if row[_ENTERED])[_HANGUP] = 1   # current's
    # prompts join a visit of their node that has none (which one does not matter: the
    # stats only count what was heard of each node's prompts)
    free: dict[str, list[list]] = {}
    for row in reversed(rows):
        free.setdefault(row[_NODE], []).append(row)
    for (node, file), endpos in heard:
        slots = free.get(node)
        if slots:
            row = slots.pop()
        else:
            row = _row(node)
            rows.append(row)
        row[_FILE], row[_ENDPOS] = file, endpos
    if not rows:
        rows.append(_row(None))       # a walk of no counted steps is still a call
    rows[0][_OUTCOME] = outcome
    return rows


def counted(row: list, head: bool) -> str:
    """The row's FIELDS but what was heard, and whether it is the call's head, in one
    column (CallNodeVisit.counted): what the stats group by."""
    return _dumps([*row[:_ENDPOS], *row[_HANGUP:], int(head)])


def uncounted(text: str) -> tuple:
    """(node, entered, first, route, key, came_from, came_by, file, hangup, outcome, head)
    of a `counted` column."""
    return tuple(json.loads(text))


def replace(database, calls) -> None:
    """Blocking, inside the caller's transaction: the visit rows of these calls, each
    (id, account, ivr_id, ivr_version, created_at, path, outcome) as the Call row stores
    them, in place of any they had (a row written early is written again at the end)."""
    calls = [c for c in calls if c[1] is not None and c[2] is not None]
    if not calls:
        return
    param = database.param
    cursor = database.cursor()
    for start in range(0, len(calls), 500):
        ids = [c[0] for c in calls[start:start + 500]]
        cursor.execute(f'DELETE FROM "{CallNodeVisit._meta.table_name}" WHERE "call_id" IN '
                       f'({", ".join([param] * len(ids))})', ids)
    values = []
    for call_id, account, ivr_id, version, started, path, outcome in calls:
        reduced = reduce_path(path, outcome)
        if reduced is None:
            continue
        for seq, row in enumerate(visit_rows(reduced)):
            values.append((call_id, seq, account, ivr_id, version, started, *row,
                           counted(row, seq == 0)))
    for start in range(0, len(values), _ROWS_PER_STATEMENT):
        chunk = values[start:start + _ROWS_PER_STATEMENT]
        cursor.execute(_insert_sql(param, len(chunk)), [v for row in chunk for v in row])


@functools.lru_cache(maxsize=64)
def _insert_sql(param: str, count: int) -> str:
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    row = "(" + ", ".join([param] * len(_COLUMNS)) + ")"
    return (f'INSERT INTO "{CallNodeVisit._meta.table_name}" ({columns}) VALUES '
            + ", ".join([row] * count))


def backfill(database) -> int:
    """Blocking: visit rows for every inbound call recorded with an IVR path (calls
    recorded before the table existed), a chunk of calls at a time in id order. Returns
    the calls read."""
    done, after = 0, ""
    while True:
        query = (Call.select(Call.id, Call.account, Call.ivr_id, Call.ivr_version,
                             Call.created_at, Call.path, Call.outcome)
                 .where(Call.direction == "inbound", Call.ivr_id.is_null(False),
                        Call.path.is_null(False), Call.id > after)
                 .order_by(Call.id).limit(_BACKFILL_CHUNK))
        sql, params = query.sql()
        rows = database.execute_sql(sql, params).fetchall()
        if not rows:
            return done
        replace(database, rows)
        done += len(rows)
        after = rows[-1][0]
