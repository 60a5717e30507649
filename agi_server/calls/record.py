"""What an inbound call did: the nodes it walked, the digits, timings and outcome.

Built in memory while the call runs (appending to a list is all a node costs). Its row is
written when the call starts (`live_row`: answered, its path so far), again with the
paths of every call in progress at each checkpoint, and once more when it ends (`row`),
so a killed engine leaves every call it held with the path it had. The engine
group-commits these rows (`save_rows`): one transaction for many calls.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import peewee

from trunx.ivr import visits
from trunx.models import Call, new_uuid, utcnow


@dataclass
class CallRecord:
    did: str | None
    caller: str | None
    uniqueid: str | None
    channel: str | None
    id: str = field(default_factory=new_uuid)
    account: str | None = None
    ivr_id: str | None = None
    ivr_version: int | None = None
    path: list[dict] = field(default_factory=list)
    outcome: str | None = None
    end_reason: str | None = None
    started_at: object = field(default_factory=utcnow)
    _t0: float = field(default_factory=time.monotonic)

    def step(self, node: str, event: str, **data) -> None:
        self.path.append({"node": node, "event": event,
                          "t": round(time.monotonic() - self._t0, 3), **data})

    def finish(self, outcome: str, reason: str | None = None) -> None:
        """The first outcome set wins: a hangup after a decided outcome doesn't rewrite it."""
        if self.outcome is None:
            self.outcome, self.end_reason = outcome, reason

    @property
    def duration(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    @property
    def nodes(self) -> list[str]:
        return [p["node"] for p in self.path if p["event"] == "enter"]

    def row(self) -> dict:
        """The Call row this record becomes, taken when the call ends."""
        return dict(
            id=self.id, account=self.account, direction="inbound", from_number=self.caller,
            to_number=self.did, status="completed", provider="asterisk", channel=self.channel,
            uniqueid=self.uniqueid, ivr_id=self.ivr_id, ivr_version=self.ivr_version,
            path=self.path, outcome=self.outcome or "completed", end_reason=self.end_reason,
            created_at=self.started_at, answered_at=self.started_at, ended_at=utcnow(),
            duration=self.duration,
        )

    def live_row(self) -> dict:
        """The row of the call in progress (`answered`, not ended), with its path so far:
        written when the call starts and at checkpoints, so a killed engine leaves it."""
        return {**self.row(), "status": "answered", "outcome": None, "end_reason": None,
                "ended_at": None, "duration": None, "path": list(self.path)}


# Fields whose Python values the database takes as they are (peewee's db_value would
# only coerce them to the type they already have); the rest go through their db_value.
_AS_IS = (peewee.CharField, peewee.IntegerField, peewee.FloatField, peewee.DateTimeField,
          peewee.ForeignKeyField)
_COLUMNS = [(f.name, f.default, None if isinstance(f, _AS_IS) else f.db_value)
            for f in Call._meta.sorted_fields]
_AT = {name: i for i, (name, _, _) in enumerate(_COLUMNS)}
# what trunx.ivr.visits.replace takes of a row, in its order
_VISIT_INPUTS = [_AT[n] for n in ("id", "account", "ivr_id", "ivr_version", "created_at",
                                  "path", "outcome")]


def column_values(row: dict) -> list:
    """Every column of a Call row, as the database stores it: the model's Python-side
    defaults filled in and JSON fields encoded, exactly as peewee would write it (a test
    holds the two side by side)."""
    out = []
    for name, default, to_db in _COLUMNS:
        if name in row:
            value = row[name]
        elif default is not None:
            value = default() if callable(default) else default
        else:
            out.append(None)
            continue
        out.append(value if to_db is None or value is None else to_db(value))
    return out


# Written by others while the call runs (the AI bridge), never by the record.
_KEPT_ON_UPDATE = {"id", "ai_result"}


_ROWS_PER_STATEMENT = 200   # x 28 columns: far below SQLite's 32,766 parameters


def save_rows(db, rows: list) -> None:
    """Blocking: many call rows in one transaction (calls that ended together). Each row
    is a Call row dict, or already its column_values. With the record writer process the
    engine sends dicts and the writer converts them here, off the engine; on the engine's
    database thread (`record_writer = thread`) the engine converts on its loop as each
    call ends, so that thread holds the GIL only to bind values, not to build them
    (building them there delayed the next call's commands: p99, docs/benchmarks.md).

    One multi-row INSERT per 200 rows, not executemany: sqlite3 releases the GIL around
    each statement step, so executemany handed the GIL to and from the event loop's
    thread twice per row, and under load those contended hand-offs (futex system calls,
    context switches) cost the engine more CPU than the inserts themselves. A row written
    early (a call bridged to an AI agent) is updated in place, keeping what the bridge
    stored on it.

    In the same transaction, each inbound call's path is reduced to the rows per-node
    stats sum (trunx.ivr.visits), replacing those of a row written early."""
    values = [r if isinstance(r, list) else column_values(r) for r in rows]
    inbound = _AT["direction"]
    with db.atomic():
        cursor = db.cursor()
        for start in range(0, len(values), _ROWS_PER_STATEMENT):
            chunk = values[start:start + _ROWS_PER_STATEMENT]
            cursor.execute(_insert_sql(db.param, len(chunk)),
                           [value for row in chunk for value in row])
        visits.replace(db, [[row[i] for i in _VISIT_INPUTS] for row in values
                            if row[inbound] == "inbound"])


@functools.lru_cache(maxsize=256)
def _insert_sql(param: str, count: int) -> str:
    names = [f.column_name for f in Call._meta.sorted_fields]
    columns = ", ".join(f'"{n}"' for n in names)
    row = "(" + ", ".join([param] * len(names)) + ")"
    updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in _KEPT_ON_UPDATE)
    return (f'INSERT INTO "{Call._meta.table_name}" ({columns}) VALUES '
            f'{", ".join([row] * count)} ON CONFLICT ("id") DO UPDATE SET {updates}')
