"""The console's call pages: live calls with their actions (the same service as the
call-actions API: play, speak, DTMF, record, transfer, and hang up), the call log, and one
call with its IVR path as a timeline."""
from __future__ import annotations

from flask import redirect, request, url_for

from admin_api import context as ctx
from admin_api.call_actions import service as call_actions
from admin_api.console import call_rows
from admin_api.console.base import bp, render
from admin_api.errors import status_for
from admin_api.voice import service as voice
from trunx.errors import NotFound, TrunxError
from trunx.models import AudioAsset

# each action's form fields, as the call-actions API names them
ACTION_FIELDS = {"play": ("audio_id",), "speak": ("text",), "dtmf": ("digits",),
                 "record": (), "transfer": ("to",)}


def _audio() -> list[AudioAsset]:
    """What the Play buttons offer: the account's assets."""
    return list(AudioAsset.select(AudioAsset.id, AudioAsset.name)
                .where(AudioAsset.account == ctx.account_id()).order_by(AudioAsset.name))


def _live_page(message=None, error=None, status=200):
    live = call_actions.live_calls(ctx.redis(), ctx.account_id())
    return render("live.html", calls=live, audio=_audio(), message=message,
                  error=error), status


@bp.get("/calls/live")
def live_calls():
    return _live_page(message=request.args.get("done"))


@bp.get("/calls/live/table")
def live_table():
    """The table alone, which the page's script swaps in every few seconds."""
    return render("live_table.html",
                  calls=call_actions.live_calls(ctx.redis(), ctx.account_id()),
                  audio=_audio())


@bp.post("/calls/live/<call_id>/<kind>")
def live_action(call_id: str, kind: str):
    account, redis, config = ctx.account_id(), ctx.redis(), ctx.config()
    try:
        live = call_actions.live_call(redis, account, account, call_id)  # 404, 409
        if kind == "hangup":
            voice.request_hangup(redis, call_id)
            message = f"Hang-up sent to call {call_id}."
        elif kind == "record_stop":
            call_actions.stop_recording(redis, account, call_id)
            message = f"Recording of call {call_id} stopping."
        elif kind in ACTION_FIELDS:
            data = {f: request.form.get(f, "") for f in ACTION_FIELDS[kind]}
            extra = {"transfer": {"live": live},
                     "play": {"base_url": ctx.base_url()}}.get(kind, {})
            result = call_actions.ROUTES[kind](redis, config, account, call_id, data, **extra)
            message = f"{kind} on call {call_id}: {result.get('status', 'accepted')}."
        else:
            raise NotFound("action-not-found", f"no action {kind!r}", {"action": kind})
    except TrunxError as exc:
        return _live_page(error=exc, status=status_for(exc))
    if request.headers.get("Accept") == "text/plain":
        return message
    return redirect(url_for("console.live_calls", done=message), code=303)


@bp.get("/calls")
def call_log():
    return render("log.html", calls=call_rows.recent(ctx.account_id()))


@bp.get("/calls/<call_id>")
def call(call_id: str):
    row = call_rows.one(ctx.account_id(), call_id)
    if row is None:
        raise NotFound("call-not-found", f"no call {call_id!r} in this account",
                       {"call_uuid": call_id})
    return render("call.html", call=row, timeline=call_rows.timeline(row.path))
