"""IVR API (seed 001): CRUD on trees, TTS for one node, DID assignment.

Every write goes through trunx.ivr.store, the one path a tree takes to the engine:
validate, store a new immutable version in SQLite, publish it to Redis.
"""
from __future__ import annotations

import copy

import peewee
from flask import Blueprint, current_app

from admin_api import assets, dids, ivr_reads
from admin_api import context as ctx
from admin_api.pagination import paginate
from trunx import patterns
from trunx.errors import Conflict, NotFound, invalid
from trunx.ivr import store as ivr_store
from trunx.ivr import tree as ivr_tree
from trunx.models import Did, Ivr, IvrVersion, new_id

bp = Blueprint("ivr", __name__, url_prefix="/ivr")
# Ids appear in URLs and Redis keys: the same alphabet as node names.
IVR_ID = patterns.NAME_RE
TREE_FIELDS = {"id", "nodes", "start"}


def as_json(ivr: Ivr, version: IvrVersion, warnings=None, dids=None) -> dict:
    definition = version.definition
    if warnings is None:
        warnings = ivr_tree.validate(definition).warnings
    if dids is None:
        dids = [d.number for d in Did.select(Did.number).where(Did.ivr == ivr)
                .order_by(Did.number)]
    return ivr_reads.ivr_object(ivr.ivr_id, definition, version.version, ivr.created_at,
                                ivr.updated_at, dids, warnings)


def not_found(ivr_id: str) -> NotFound:
    return NotFound("ivr-not-found", f"no IVR {ivr_id!r} in this account",
                    {"id": ivr_id})


def get_owned(ivr_id: str) -> Ivr:
    ivr = Ivr.get_or_none(Ivr.account == ctx.account_id(), Ivr.ivr_id == ivr_id)
    if ivr is None:
        raise not_found(ivr_id)
    return ivr


def _tree(data: dict, base: dict | None = None) -> dict:
    """The definition to store: `base` with the fields the request sent replacing its own
    (nodes as a whole; "start": null removes start)."""
    tree = dict(base or {})
    if "nodes" in data:
        tree["nodes"] = data["nodes"]
    if "start" in data:
        if data["start"] is None:
            tree.pop("start", None)
        else:
            tree["start"] = data["start"]
    return tree


def _save(ivr_id: str, tree: dict, *, create: bool):
    try:
        return ivr_store.save(ctx.store(), ctx.account_id(), ivr_id, tree, ctx.config(),
                              create=create)
    except Ivr.DoesNotExist:
        # deleted between this request's read and its save (deletes take the writer lock)
        raise not_found(ivr_id) from None
    except peewee.IntegrityError:
        # two writers raced for the same id or the same next version number
        if create:
            raise Conflict("ivr-exists", f"an IVR with id {ivr_id!r} already exists",
                           {"id": ivr_id}) from None
        raise Conflict("ivr-conflict", "the IVR changed while this update was being "
                       "saved; retry", {"id": ivr_id}) from None


@bp.post("")
def create():
    data = ctx.json_body(TREE_FIELDS)
    ivr_id = data.get("id")
    if ivr_id is None:
        ivr_id = new_id("ivr")
    elif not patterns.matches(IVR_ID, ivr_id):
        raise invalid("id", "invalid-id", "id is 1-64 of A-Z a-z 0-9 _ . -")
    # an id already taken is found by the INSERT's unique index (409 ivr-exists in _save),
    # not by a SELECT first: that was one more statement, a GIL hand-off, on every create
    ivr, version, warnings = _save(ivr_id, _tree(data), create=True)
    return as_json(ivr, version, warnings, dids=[]), 201   # no DID can point at it yet


@bp.get("")
def list_ivrs():
    page = paginate(assets.current_versions_query(ctx.account_id()), "ivrs",
                    Ivr.created_at, Ivr.id, default_limit=None)
    items = [as_json(version.ivr, version) for version in page.rows]
    return {"ivrs": items, "count": len(items), **page.fields()}


@bp.get("/<ivr_id>")
def get(ivr_id: str):
    # the hot read: one prepared query and, while the IVR is unchanged, remembered bytes
    body = _memo().body(ctx.account_id(), ivr_id)
    if body is None:
        get_owned(ivr_id)   # raises the 404
    return current_app.response_class(body, mimetype=current_app.json.mimetype)


def _memo() -> ivr_reads.Memo:
    memo = current_app.extensions.get("trunx.ivr_memo")
    if memo is None:   # one per app, i.e. per worker process
        memo = current_app.extensions["trunx.ivr_memo"] = ivr_reads.Memo(ctx.store().db)
    return memo


@bp.patch("/<ivr_id>")
def update(ivr_id: str):
    ivr = get_owned(ivr_id)
    data = ctx.json_body(TREE_FIELDS)
    if "id" in data and data["id"] != ivr_id:
        raise invalid("id", "immutable", "an IVR's id cannot change; create a new IVR")
    if not set(data) & {"nodes", "start"}:
        raise invalid("nodes", "required", "send nodes and/or start to update")
    tree = _tree(data, ivr_store.current_version(ivr).definition)
    ivr, version, warnings = _save(ivr_id, tree, create=False)
    return as_json(ivr, version, warnings)


@bp.delete("/<ivr_id>")
def delete(ivr_id: str):
    ivr = get_owned(ivr_id)
    # ivr_store checks the DIDs and deletes in one transaction, under the writer lock that
    # saves hold until they have published (no transaction here: the lock comes first)
    deleted = ivr_store.delete(ctx.store(), ivr)   # Assigned: 409 ivr-assigned
    if not deleted:   # a concurrent delete got there first
        raise not_found(ivr_id)
    return {"deleted": True, "id": ivr_id}


@bp.post("/<ivr_id>/audio")
def node_audio(ivr_id: str):
    ivr = get_owned(ivr_id)
    data = ctx.json_body(schema="NodeAudioRequest")
    node, text, voice = data["node"], data["text"], data.get("voice")
    definition = ivr_store.current_version(ivr).definition
    if node not in definition["nodes"]:
        raise NotFound("node-not-found", f"IVR {ivr_id!r} has no node {node!r}",
                       {"id": ivr_id, "node": node, "nodes": sorted(definition["nodes"])})
    config, store = ctx.config(), ctx.store()
    rendered, voice_warnings = assets.synthesize(text, voice, config)
    # ':' is outside the audio-reference alphabet, so no tree can name this asset by
    # accident; trees refer to it by its id.
    asset = assets.create(store, ctx.account_id(), f"ivr:{ivr_id}:{node}", rendered, config,
                          source="tts", text=text)
    tree = copy.deepcopy(definition)
    tree["nodes"][node]["audio"] = asset.id
    try:
        ivr, version, warnings = _save(ivr_id, tree, create=False)
    except BaseException:
        assets.delete(store, asset, config)
        raise
    out = as_json(ivr, version, warnings)
    out["warnings"] = voice_warnings + out["warnings"]
    out["node"] = node
    out["audio"] = assets.as_json(asset, ctx.base_url())
    return out, 201


@bp.post("/<ivr_id>/assign")
def assign(ivr_id: str):
    ivr = get_owned(ivr_id)
    data = ctx.json_body(schema="AssignRequest")
    did = dids.get_owned(data["did"])
    # ivr_store re-reads both under the writer lock (either may be deleted by then) and
    # says what the DID pointed at just before, which is what this assign replaced
    previous = ivr_store.assign(ctx.store(), ivr, did)   # Gone: 404 ivr- or did-not-found
    return {"ivr": ivr.ivr_id, "did": did.number, "assigned": True, "previous": previous}
