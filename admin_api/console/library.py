"""The console's account pages: the audio library with players, the do-not-call list
(through trunx.dnc, as the suppressions API writes it), and the AI agents."""
from __future__ import annotations

import os

from flask import redirect, request, send_file, url_for

from admin_api import context as ctx
from admin_api.audio import get_owned as owned_audio
from admin_api.console.base import bp, render
from admin_api.dids import e164
from admin_api.errors import status_for
from trunx import dnc
from trunx.errors import NotFound, TrunxError
from trunx.models import Agent, AudioAsset, Suppression


@bp.get("/audio")
def audio():
    rows = (AudioAsset.select().where(AudioAsset.account == ctx.account_id())
            .order_by(AudioAsset.created_at.desc(), AudioAsset.id))
    return render("audio.html", assets=list(rows))


@bp.get("/audio/<audio_id>/file")
def audio_file(audio_id: str):
    asset = owned_audio(audio_id)
    if not os.path.isfile(asset.file_path):
        raise NotFound("audio-file-missing", "the asset's file is missing on this host",
                       {"id": audio_id})
    return send_file(asset.file_path, mimetype="audio/wav", max_age=0)


def _dnc_page(error=None, status=200, number=""):
    rows = (Suppression.select().where(Suppression.account == ctx.account_id())
            .order_by(Suppression.created_at.desc(), Suppression.id))
    return render("dnc.html", rows=list(rows), error=error, number=number,
                  message=request.args.get("done")), status


@bp.get("/dnc")
def dnc_list():
    return _dnc_page()


@bp.post("/dnc")
def dnc_add():
    number = request.form.get("number", "").strip()
    reason = request.form.get("reason", "").strip()[:500] or None
    try:
        number = e164({"number": number}, "number")
        dnc.suppress(ctx.account_id(), number, source="api", redis=ctx.redis(), reason=reason)
    except TrunxError as exc:
        return _dnc_page(error=exc, status=status_for(exc), number=number)
    return redirect(url_for("console.dnc_list", done=f"{number} added."), code=303)


@bp.post("/dnc/remove")
def dnc_remove():
    number = request.form.get("number", "")
    if not dnc.remove(ctx.account_id(), number, ctx.redis()):
        return _dnc_page(error=NotFound("suppression-not-found",
                                        f"{number} is not on the list"), status=404)
    return redirect(url_for("console.dnc_list", done=f"{number} removed."), code=303)


@bp.get("/agents")
def agents():
    rows = (Agent.select().where(Agent.account == ctx.account_id())
            .order_by(Agent.created_at, Agent.id))
    return render("agents.html", agents=list(rows))
