"""The account's calls, inbound and outbound, as the API lists them (GET /api/voice).

Newest first, filtered by `direction`, `status`, `from`, `to`, `since` (inclusive) and
`until` (exclusive) on the call's start, paged by admin_api.pagination. Each call is
trunx.calls.call_json, and an inbound call adds what its IVR did: `ivr`, `ivrVersion`,
`outcome` and `path`, the steps the engine recorded (agi_server/calls/record.py) in the
API's form:

    {"node": "welcome", "event": "prompt", "at": 0.04, "audio": "aud_...",
     "heard": 2.1, "heardShare": 0.62, "bargeIn": true}
    {"node": "welcome", "event": "digits", "at": 2.15, "digits": "1"}

`at` is seconds from the answer; `heard` is how much of a prompt the caller heard
(Asterisk's end position, 8,000 samples a second) and `heardShare` that part of the
prompt's whole length, when the prompt is one of the account's audio assets.
"""
from __future__ import annotations

import datetime as dt
import os
import re

from flask import request

from admin_api import context as ctx
from admin_api import pagination
from trunx import calls, phone
from trunx.errors import invalid
from trunx.models import AudioAsset, Call

DIRECTIONS = ("inbound", "outbound")
DEFAULT_LIMIT = 50
SAMPLE_RATE = 8000       # STREAM FILE's endpos counts 8 kHz samples (docs/architecture.md)
_ASSET = re.compile(r"^aud_[0-9a-f]{16}$")
# stored step keys shown under another name, or not at all (the file is a path on the
# Asterisk host: the asset id or sound name says the same without it)
_RENAMED = {"t": "at", "barge_in": "bargeIn", "dial_status": "dialStatus",
            "ai_status": "aiStatus"}
_HIDDEN = {"file", "endpos"}


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
    durations = asset_durations(account, page.rows)
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
        durations = asset_durations(call.account_id, [call])
    return {"ivr": call.ivr_id, "ivrVersion": call.ivr_version, "outcome": call.outcome,
            "path": [path_step(s, durations) for s in call.path or []]}


def path_step(step: dict, durations: dict[str, float]) -> dict:
    out = {_RENAMED.get(k, k): v for k, v in step.items() if k not in _HIDDEN}
    if "file" in step:
        name = os.path.basename(step["file"] or "")
        out["audio"] = name
        if step.get("endpos") is not None:
            heard = round(step["endpos"] / SAMPLE_RATE, 3)
            out["heard"] = heard
            total = durations.get(name)
            if total:
                out["heardShare"] = round(min(1.0, heard / total), 3)
    return out


def asset_durations(account: str, rows: list[Call]) -> dict[str, float]:
    """Lengths of the account's assets the page's prompts played, by asset id (one query)."""
    ids = {os.path.basename(s.get("file") or "") for c in rows for s in c.path or []
           if s.get("file")}
    ids = [i for i in ids if _ASSET.match(i)]
    if not ids:
        return {}
    query = AudioAsset.select(AudioAsset.id, AudioAsset.duration_seconds).where(
        AudioAsset.account == account, AudioAsset.id.in_(ids))
    return {a.id: a.duration_seconds for a in query}


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
