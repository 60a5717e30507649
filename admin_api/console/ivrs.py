"""The console's IVR pages: the list; one IVR with its diagram (the stats' edge counts laid
over it, a simulated walk drawn bold), per-node stats, simulate, and its definition edited
field by field, each validation problem shown beside the field it names."""
from __future__ import annotations

import re

import peewee
from flask import Response, redirect, request, url_for
from markupsafe import Markup

from admin_api import assets, ivr_tools
from admin_api import context as ctx
from admin_api import ivr as ivr_api
from admin_api.console import ivr_form
from admin_api.console.base import bp, render
from trunx.errors import InvalidInput, TrunxError
from trunx.ivr import diagram, simulate, stats
from trunx.ivr import store as ivr_store
from trunx.ivr.tree import ACTIONS
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


def _page(ivr_id: str, *, sim=None, inputs="", rows=None, problems=(), start=None,
          status=200, message=None):
    """The IVR's page; `rows` (ivr_form.NodeForm) and `problems` (those naming no node)
    show a definition that was sent back, else the current version's."""
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
    return render("ivr.html", ivr=ivr, version=version, svg=svg, svg_error=svg_error,
                  stats=numbers, stats_error=stats_error, args=args, sim=sim, inputs=inputs,
                  rows=rows if rows is not None else ivr_form.from_definition(definition),
                  start=definition.get("start", "") if start is None else start,
                  problems=problems, labels=ivr_form.LABELS, actions=ACTIONS,
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
    """The definition form (admin_api.console.ivr_form), saved as a new version; when the
    tree does not validate, the form comes back with each problem beside its field."""
    tree, rows = ivr_form.from_form(request.form)
    start = request.form.get("start", "").strip()
    ivr_api.get_owned(ivr_id)
    try:   # the API's own save: validate, store a new version, publish it
        ivr_store.save(ctx.store(), ctx.account_id(), ivr_id, tree, ctx.config(), create=False)
    except (Ivr.DoesNotExist, peewee.IntegrityError):
        # deleted, or saved by someone else, while this form was being saved
        return _page(ivr_id, rows=rows, start=start, status=409, problems=[
            {"field": "", "code": "ivr-conflict",
             "message": "the IVR changed while this was being saved; look it over and "
                        "save again"}])
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        left = ivr_form.place(details, rows) if details else [
            {"field": "", "code": exc.code, "message": exc.message}]
        return _page(ivr_id, rows=rows, start=start, problems=left, status=422)
    return redirect(url_for("console.ivr", ivr_id=ivr_id, saved=1), code=303)


@bp.get("/ivrs/<ivr_id>/diagram.svg")
def ivr_diagram(ivr_id: str):
    ivr = ivr_api.get_owned(ivr_id)
    body = ivr_tools.draw(ctx.account_id(), ivr, "svg", {"overlay": "stats"})
    return Response(body, content_type="image/svg+xml")
