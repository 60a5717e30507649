"""Voice API (seed 002): place an outbound call, plain or AI; read it; hang it up.

The API never talks to a live channel: POST stores the call and queues it for the engine
(trunx.voice_service.place_call), GET reads the record the engine keeps up to date, DELETE asks
the engine (on its command stream) to end the call and waits briefly for it to say so.
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app

from admin_api import context as ctx
from admin_api.idempotency import idempotent
from admin_api.voice import amd as voice_amd
from admin_api.voice import listing
from admin_api.voice import service as voice_service
from trunx import calls
from trunx.errors import NotFound, invalid
from trunx.models import Call

bp = Blueprint("voice", __name__, url_prefix="/api/voice")

HANGUP_WAIT = 5.0      # seconds DELETE waits for the engine to confirm the call ended
                       # (app.config["VOICE_HANGUP_WAIT"] overrides it)


def get_owned(call_id: str) -> Call:
    call = voice_service.get_owned(ctx.account_id(), call_id)
    if call is None:
        raise NotFound("call-not-found", f"no call {call_id!r} in this account",
                       {"id": call_id})
    return call


@bp.post("")
@idempotent
def create():
    data = ctx.json_body(schema="VoiceRequest")
    ai = None
    if "systemPrompt" in data:
        ai = {key: data[key] for key in voice_service.AI_KEYS if key in data}
    else:
        stray = sorted(k for k in voice_service.AI_KEYS if k in data)
        if stray:
            raise invalid(stray[0], "requires-system-prompt",
                          f"{', '.join(stray)} only apply to AI calls: add systemPrompt")
    call = voice_service.place_call(
        ctx.store(), ctx.account_id(), data.get("from"), data.get("to"), ai=ai,
        webhook_url=data.get("webhookUrl"), max_duration=data.get("maxDuration"),
        metadata=data.get("metadata"), config=ctx.config(),
        detection={k: data[k] for k in voice_amd.FIELDS if k in data})
    return {"id": call.id, "callId": call.call_sid, "status": call.status}, 201


@bp.get("")
def list_calls():
    return listing.list_calls()


@bp.get("/<call_id>")
def get(call_id: str):
    call = get_owned(call_id)
    position = None
    if call.status == "initiated":
        position = voice_service.queue_position(ctx.redis(), call.id)
    out = calls.call_json(call, queue_position=position, base_url=ctx.base_url())
    if call.direction == "inbound":     # what its IVR did, as the list shows it
        out.update(listing.inbound_fields(call))
    return out


@bp.delete("/<call_id>")
def end(call_id: str):
    call = get_owned(call_id)
    if call.status in calls.FINAL:
        return {"ended": True}
    voice_service.request_hangup(ctx.redis(), call.id)
    deadline = time.monotonic() + current_app.config.get("VOICE_HANGUP_WAIT", HANGUP_WAIT)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if Call.get_by_id(call.id).status in calls.FINAL:
            return {"ended": True}
    # The request stays queued for the engine, which ends the call when it gets to it.
    return {"ended": False, "pending": True}, 202
