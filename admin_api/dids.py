"""DIDs: the account's phone numbers, which IVRs are assigned to (trunx's own addition;
the hosted service provisions numbers itself, here the user declares the ones their
carrier routes to this Asterisk)."""
from __future__ import annotations

import peewee
from flask import Blueprint

from admin_api import context as ctx
from admin_api.pagination import paginate
from trunx import phone
from trunx.errors import Conflict, Forbidden, NotFound, invalid
from trunx.ivr import store as ivr_store
from trunx.models import Did, iso

bp = Blueprint("dids", __name__, url_prefix="/api/dids")


def as_json(did: Did) -> dict:
    return {"number": did.number, "label": did.label,
            "ivr": did.ivr.ivr_id if did.ivr_id else None, "createdAt": iso(did.created_at)}


def not_found(number: str) -> NotFound:
    return NotFound("did-not-found", f"no DID {number} in this account", {"did": number})


def get_owned(number: str) -> Did:
    did = Did.get_or_none(Did.number == number, Did.account == ctx.account_id())
    if did is None:
        raise not_found(number)
    return did


def e164(data: dict, field: str) -> str:
    value = data.get(field)
    if not phone.is_e164(value):
        raise invalid(field, "invalid-number",
                      f"{field} must be an E.164 number like +19495551234")
    return value


@bp.post("")
def create():
    if not ctx.config().self_service_dids:
        raise Forbidden("did-allocation-by-operator",
                        "numbers are allocated by the operator on this server "
                        "(`trunx dids allocate NUMBER ACCOUNT_ID`)", {"field": "number"})
    data = ctx.json_body(schema="DidRequest")
    number, label = data["number"], data.get("label")
    try:
        with ctx.store().db.atomic():
            did = Did.create(number=number, account=ctx.account_id(), label=label)
    except peewee.IntegrityError:
        # Whoever owns it, the answer is the same: which account owns a number is not ours
        # to tell.
        raise Conflict("did-exists", f"{number} is already registered",
                       {"did": number}) from None
    return as_json(did), 201


@bp.get("")
def list_dids():
    page = paginate(Did.select().where(Did.account == ctx.account_id()), "dids",
                    Did.created_at, Did.number, default_limit=None)
    items = [as_json(d) for d in page.rows]
    return {"dids": items, "count": len(items), **page.fields()}


@bp.delete("/<number>")
def delete(number: str):
    did = get_owned(number)
    # ivr_store deletes it (assignment and all) and drops it from the DID map under the
    # writer lock that assigns hold until they have published (no transaction here: the
    # lock comes first)
    if not ivr_store.delete_did(ctx.store(), did):   # a concurrent delete got there first
        raise not_found(number)
    return {"deleted": True, "number": number}
