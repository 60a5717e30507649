"""The console's IVR pages: the list; one IVR with its diagram (the stats' edge counts laid
over it), per-node stats, simulate, and its definition edited node by node, each
validation problem shown beside the node it names."""
from __future__ import annotations

import json
import re

import peewee
from flask import Response, redirect, request, url_for
from markupsafe import Markup

from admin_api import assets, ivr_tools
from admin_api import context as ctx
from admin_api import ivr as ivr_api
from admin_api.console.base import bp, render
from trunx.errors import InvalidInput, TrunxError
from trunx.ivr import diagram, simulate, stats
from trunx.ivr import store as ivr_store
from trunx.models import Ivr

_SVG_START = re.compile(rb"<svg\b")


@bp.get("/ivrs")
def ivrs():
    return render("ivrs.html", ivrs=list(assets.current_versions(ctx.account_id())))


def _inline_svg(svg: bytes) -> Markup:
    """dot's SVG for inlining in the page: from <svg on (no XML prolog or DOCTYPE). dot
    wrote every label as XML text, escaped, so the markup holds no name as markup."""
    match = _SVG_START.search(svg)
    return Markup(svg[match.start():].decode() if match else "")


def _page(ivr_id: str, *, sim=None, inputs="", problems=None, drafts=None, status=200,
          message=None):
    ivr = ivr_api.get_owned(ivr_id)
    version = ivr_store.current_version(ivr)
    program = ivr_tools.program_of(ivr)
    args = {k: v for k, v in request.args.items() if k in ("since", "until")}
    account = ctx.account_id()
    try:
        numbers = ivr_tools.stats_of(account, ivr, {**args, "version": None})
        stats_error = None
    except InvalidInput as exc:
        numbers, stats_error = None, exc
        args = {}
    visited = {v["node"] for v in sim.get("nodes", ())} if sim else set()
    dot = diagram.to_dot(program, prompts=ivr_tools.Assets(account, program).words,
                         counts=stats.edge_counts(numbers) if numbers else None,
                         visited=visited)
    try:
        svg, svg_error = _inline_svg(diagram.to_svg(dot)), None
    except TrunxError as exc:
        svg, svg_error = Markup(""), exc
    definition = version.definition
    nodes = drafts if drafts is not None else {
        name: json.dumps(node, indent=2) for name, node in definition["nodes"].items()}
    by_node: dict[str, list] = {}
    for p in problems or []:
        parts = p["field"].split(".")
        where = parts[1] if parts[0] == "nodes" and len(parts) > 1 else "_tree"
        by_node.setdefault(where, []).append(p)
    return render("ivr.html", ivr=ivr, version=version, svg=svg, svg_error=svg_error,
                  stats=numbers, stats_error=stats_error, args=args, sim=sim, inputs=inputs,
                  nodes=nodes, start=definition.get("start", ""), problems=by_node,
                  message=message), status


@bp.get("/ivrs/<ivr_id>")
def ivr(ivr_id: str):
    return _page(ivr_id, message="Saved: a new version is live for new calls."
                 if request.args.get("saved") else None)


@bp.post("/ivrs/<ivr_id>/simulate")
def ivr_simulate(ivr_id: str):
    text = request.form.get("inputs", "")
    inputs = text.replace(",", " ").split()
    try:
        checked = simulate.check_inputs(inputs)
        ivr = ivr_api.get_owned(ivr_id)
        result = ivr_tools.simulate_walk(ctx.account_id(), ivr_tools.program_of(ivr), checked)
    except InvalidInput as exc:
        return _page(ivr_id, inputs=text, sim={"error": exc}, status=422)
    return _page(ivr_id, inputs=text, sim=result)


@bp.post("/ivrs/<ivr_id>/definition")
def ivr_definition(ivr_id: str):
    """Each node's JSON comes in its own field (node:<name>); a node whose field is
    emptied is removed; new_name/new_node add one."""
    drafts, nodes, problems = {}, {}, []
    for field, text in request.form.items():
        if not field.startswith("node:"):
            continue
        name = field[5:]
        drafts[name] = text
        if not text.strip():
            continue
        try:
            nodes[name] = json.loads(text)
        except ValueError as exc:
            problems.append({"field": f"nodes.{name}", "code": "invalid-json",
                             "message": f"not JSON: {exc}"})
    new_name = request.form.get("new_name", "").strip()
    new_text = request.form.get("new_node", "").strip()
    if new_name or new_text:
        drafts[new_name or "(new)"] = new_text
        try:
            nodes[new_name] = json.loads(new_text)
        except ValueError as exc:
            problems.append({"field": f"nodes.{new_name or '(new)'}", "code": "invalid-json",
                             "message": f"not JSON: {exc}"})
    if problems:
        return _page(ivr_id, problems=problems, drafts=drafts, status=422)
    tree = {"nodes": nodes}
    start = request.form.get("start", "").strip()
    if start:
        tree["start"] = start
    ivr_api.get_owned(ivr_id)
    try:   # the API's own save: validate, store a new version, publish it
        ivr_store.save(ctx.store(), ctx.account_id(), ivr_id, tree, ctx.config(), create=False)
    except (Ivr.DoesNotExist, peewee.IntegrityError):
        # deleted, or saved by someone else, while this form was being saved
        return _page(ivr_id, problems=[{"field": "_tree", "code": "ivr-conflict",
                                        "message": "the IVR changed while this was being "
                                                   "saved; look it over and save again"}],
                     drafts=drafts, status=409)
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        return _page(ivr_id, problems=details or [{"field": "_tree", "code": exc.code,
                                                   "message": exc.message}],
                     drafts=drafts, status=422)
    return redirect(url_for("console.ivr", ivr_id=ivr_id, saved=1), code=303)


@bp.get("/ivrs/<ivr_id>/diagram.svg")
def ivr_diagram(ivr_id: str):
    ivr = ivr_api.get_owned(ivr_id)
    body = ivr_tools.draw(ctx.account_id(), ivr, "svg", {"overlay": "stats"})
    return Response(body, content_type="image/svg+xml")
