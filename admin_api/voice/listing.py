"""The account's calls, inbound and outbound, as the API lists them (GET /api/voice).

Newest first, filtered by `direction`, `status`, `from`, `to`, `since` (inclusive) and
`until` (exclusive) on the call's start, paged by admin_api.pagination. Each call is
trunx.calls.call_json, and an inbound call adds what its IVR did: `ivr`, `ivrVersion`,
`outcome` and `path`, the steps its IVR walked in trunx/call_path.py's form (nodes, keys,
timings, how much of each prompt was heard).
"""
from __future__ import annotations

import datetime as dt

from flask import request

from admin_api import context as ctx
from admin_api import pagination
from trunx import call_path, calls, phone
from trunx.errors import invalid
from trunx.models import Call

DIRECTIONS = ("inbound", "outbound")
DEFAULT_LIMIT = 50


def list_calls() -> dict:
    account = ctx.account_id()
    query = Call.select().where(Call.account == account)
    args = request.args
    direction = args.get("direction")
    if direction is not None:
        if direction not in DIRECTIONS:
            raise invalid("direction", "invalid-value", "direction must be inbound or outbound")
        query = query.where(Call.direction == direction)
    status = args.get("status")
    if status is not None:
        if status not in calls.STATUSES:
            raise invalid("status", "invalid-value",
                          f"status must be one of {', '.join(calls.STATUSES)}")
        query = query.where(Call.status == status)
    for name, column in (("from", Call.from_number), ("to", Call.to_number)):
        if (value := args.get(name)) is not None:
            query = query.where(column == _number(name, value))
    for name, compare in (("since", Call.created_at.__ge__), ("until", Call.created_at.__lt__)):
        if (value := args.get(name)) is not None:
            query = query.where(compare(_timestamp(name, value)))
    page = pagination.paginate(query, "calls", Call.created_at, Call.id,
                               default_limit=DEFAULT_LIMIT, newest_first=True)
    durations = call_path.asset_durations(account, [c.path for c in page.rows])
    base = ctx.base_url()
    items = [call_item(c, base, durations) for c in page.rows]
    return {"calls": items, "count": len(items), **page.fields()}


def call_item(call: Call, base_url: str, durations: dict[str, float]) -> dict:
    out = calls.call_json(call, base_url=base_url)
    if call.direction == "inbound":
        out.update(inbound_fields(call, durations))
    return out


def inbound_fields(call: Call, durations: dict[str, float] | None = None) -> dict:
    if durations is None:
        durations = call_path.asset_durations(call.account_id, [call.path])
    return {"ivr": call.ivr_id, "ivrVersion": call.ivr_version, "outcome": call.outcome,
            "path": call_path.path_json(call.path, durations)}


def _number(field: str, value: str) -> str:
    # an unescaped `+` in a query string arrives as a space: take it as meant
    if value.startswith(" "):
        value = "+" + value[1:]
    if not phone.is_e164(value):
        raise invalid(field, "invalid-number",
                      f"{field} must be an E.164 number like +19495551234 (%2B for + in a URL)")
    return value


def _timestamp(field: str, value: str) -> dt.datetime:
    """ISO 8601 (`2026-03-09T15:30:00Z`, with or without fractions or an offset) -> naive
    UTC, as the models store times."""
    parsed = None
    # an unescaped `+` of an offset arrives as a space, too
    for candidate in (value.strip(), value.strip().replace(" ", "+")):
        try:
            parsed = dt.datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    if parsed is None:
        raise invalid(field, "invalid-timestamp",
                      f"{field} must be an ISO 8601 time like 2026-03-09T15:30:00Z")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed
