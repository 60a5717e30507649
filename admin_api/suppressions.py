"""Suppressions: the account's do-not-call list (trunx's addition). Every outbound path
(plain, AI and agent calls, IVR transfers) refuses a number on it; an IVR `suppress` node
adds the caller. Written through trunx.dnc: SQLite first, then the Redis mirror."""
from __future__ import annotations

from flask import Blueprint

from admin_api import context as ctx
from admin_api.pagination import paginate
from trunx import dnc
from trunx.errors import NotFound
from trunx.models import Suppression, iso

bp = Blueprint("suppressions", __name__, url_prefix="/api/suppressions")


def as_json(row: Suppression) -> dict:
    return {"number": row.number, "reason": row.reason, "source": row.source,
            "callId": row.call_id, "did": row.did, "node": row.node, "ivr": row.ivr_id,
            "createdAt": iso(row.created_at)}


@bp.get("")
def list_suppressions():
    page = paginate(Suppression.select().where(Suppression.account == ctx.account_id()),
                    "suppressions", Suppression.created_at, Suppression.id,
                    default_limit=None)
    items = [as_json(r) for r in page.rows]
    return {"suppressions": items, "count": len(items), **page.fields()}


@bp.post("")
def create():
    data = ctx.json_body(schema="SuppressionRequest")
    number, reason = data["number"], data.get("reason")
    existing = Suppression.get_or_none(Suppression.account == ctx.account_id(),
                                       Suppression.number == number)
    row = dnc.suppress(ctx.account_id(), number, source="api", redis=ctx.redis(),
                       reason=reason)
    return as_json(row), 200 if existing else 201


@bp.delete("/<number>")
def delete(number: str):
    if not dnc.remove(ctx.account_id(), number, ctx.redis()):
        raise NotFound("suppression-not-found", f"{number} is not on the list",
                       {"number": number})
    return {"deleted": True, "number": number}
