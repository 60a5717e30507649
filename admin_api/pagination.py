"""Cursor pagination, one helper for every list the API serves.

    GET /api/voice?limit=20                 -> {"calls": [...20], "count": 20, "nextCursor": "..."}
    GET /api/voice?limit=20&cursor=<that>   -> the next 20, after the last one seen

Keyset pagination: a list is ordered by (a timestamp, the row's id), and the cursor holds
the last row's pair, so the next page is "rows after that pair" whatever was inserted or
deleted meanwhile (an offset would skip or repeat rows when a row is inserted ahead of
it). The cursor is opaque to clients: base64url of JSON naming the list it came from, so a
cursor from another list is refused (422 naming `cursor`) rather than misread.

`limit`: the agents list keeps the seed's default of 50; lists whose seed page says they
return everything (audio, IVRs) and trunx's own older lists (DIDs, suppressions) still
return everything when no `limit` is given, so existing clients see no change (not even a
new field), and page when asked to. `nextCursor` is null on the last page.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

import peewee
from flask import request

from trunx.errors import invalid

MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    rows: list
    next_cursor: str | None
    paged: bool = True      # False: no limit applied (a list that returns everything)

    def fields(self) -> dict:
        """`nextCursor` for the body; a list returning everything (no `limit` asked) keeps
        the seed's exact shape without it."""
        return {"nextCursor": self.next_cursor} if self.paged else {}


def limit_arg(default: int | None, maximum: int = MAX_LIMIT) -> int | None:
    """`?limit=`, a whole number from 1 to `maximum`; `default` when absent (None: all)."""
    raw = request.args.get("limit")
    if raw is None:
        return default
    # ASCII digits only: "²" is a digit to str.isdigit (and int() refuses it), "١٢" too
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= maximum):
        raise invalid("limit", "out-of-range",
                      f"limit must be a whole number from 1 to {maximum}")
    return int(raw)


def encode_cursor(kind: str, values: list) -> str:
    raw = json.dumps({"k": kind, "v": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["k"] != kind or not isinstance(data["v"], list) or len(data["v"]) != 2:
            raise ValueError("another list's cursor")
        return data["v"]
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid("cursor", "invalid-cursor",
                      "cursor is not one this list returned (use nextCursor as given)"
                      ) from exc


def _to_wire(value) -> object:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _from_wire(value, field) -> object:
    if isinstance(field, peewee.DateTimeField):
        try:
            return dt.datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise invalid("cursor", "invalid-cursor", "cursor is malformed") from exc
    return value


def paginate(query, kind: str, order, tiebreak, *, default_limit: int | None,
             newest_first: bool = False, maximum: int = MAX_LIMIT) -> Page:
    """One page of `query` (a peewee select), ordered by (`order`, `tiebreak`) fields,
    ascending or `newest_first`, after the request's `cursor`, of the request's `limit`.
    `kind` names the list in its cursors."""
    limit = limit_arg(default_limit, maximum)
    cursor = request.args.get("cursor")
    if cursor is not None:
        after = decode_cursor(kind, cursor)
        key, tie = _from_wire(after[0], order), after[1]
        if newest_first:
            query = query.where((order < key) | ((order == key) & (tiebreak < tie)))
        else:
            query = query.where((order > key) | ((order == key) & (tiebreak > tie)))
    if newest_first:
        query = query.order_by(order.desc(), tiebreak.desc())
    else:
        query = query.order_by(order, tiebreak)
    if limit is None:
        return Page(list(query), None, paged=False)
    rows = list(query.limit(limit + 1))     # one more: is there a next page?
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    values = [_value(last, order), _value(last, tiebreak)]
    return Page(rows, encode_cursor(kind, [_to_wire(v) for v in values]))


def _value(row, field):
    """The field's value on a row of the query (a joined model's field reads from it)."""
    model = field.model
    holder = row if isinstance(row, model) else getattr(row, model._meta.name, row)
    value = getattr(holder, field.name)
    return value.id if hasattr(value, "_meta") else value
