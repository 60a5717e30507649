"""Call Actions (seed 004): transfer, record (and stop), play, speak and DTMF on a live call.

    POST   /v1/voice/accounts/{auth_id}/calls/{call_uuid}/transfer|record|play|speak|dtmf
    POST   /v1/voice/accounts/{auth_id}/calls/{call_uuid}/transfer/{transfer_uuid}/complete|cancel
                                                    (attended transfers, trunx)
    DELETE /v1/voice/accounts/{auth_id}/calls/{call_uuid}/record
    GET    /v1/voice/accounts/{auth_id}/calls                   the live calls     (trunx)
    GET    /v1/voice/accounts/{auth_id}/calls/{call_uuid}/actions/{action_uuid}   (trunx)
    GET    /v1/voice/accounts/{auth_id}/recordings/{recording_uuid}.{mp3|wav}     (trunx)

`auth_id` is the account id; another account's id answers 403. The work is
admin_api.call_actions.service': this module maps HTTP onto it. Actions run asynchronously in the
engine; the answer says the action was accepted, GET .../actions/{uuid} says how it went.
Stopping a recording waits (briefly) for the engine to finish the file, because the answer
carries its URL and measured duration.
"""
from __future__ import annotations

import os
import time

from flask import Blueprint, current_app, send_file

from admin_api import context as ctx
from admin_api.call_actions import service as call_actions
from admin_api.idempotency import idempotent
from trunx.errors import Forbidden, NotFound, UpstreamError
from trunx.models import Recording

bp = Blueprint("call_actions", __name__, url_prefix="/v1/voice/accounts/<auth_id>")

FIELDS = {"transfer": {"to", "caller_id", "answer_url", "mode"},
          "record": {"format", "max_length", "trim_silence"},
          "play": {"url", "audio_id", "loop"},
          "speak": {"text", "voice", "language", "engine"},
          "dtmf": {"digits"}}
# bodies checked against the OpenAPI document's schema (the service checks the rest)
# (play keeps its own checks: its URL errors are the media family's 400s)
SCHEMAS = {"transfer": "TransferRequest", "record": "RecordRequest", "speak": "SpeakRequest",
           "dtmf": "DtmfRequest"}
RECORD_STOP_WAIT = 15.0    # seconds DELETE .../record waits for the finished file
                           # (app.config["RECORD_STOP_WAIT"] overrides it)
MIMETYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}


def _live(auth_id: str, call_uuid: str) -> dict:
    return call_actions.live_call(ctx.redis(), ctx.account_id(), auth_id, call_uuid)


def _action(kind: str):
    def view(auth_id: str, call_uuid: str):
        data = (ctx.json_body(schema=SCHEMAS[kind]) if kind in SCHEMAS
                else ctx.json_body(FIELDS[kind]))
        live = _live(auth_id, call_uuid)
        extra = {"transfer": {"live": live}, "play": {"base_url": ctx.base_url()}}
        return call_actions.ROUTES[kind](ctx.redis(), ctx.config(), ctx.account_id(),
                                         call_uuid, data, **extra.get(kind, {}))
    view.__name__ = kind
    return view


for _kind in FIELDS:
    bp.add_url_rule(f"/calls/<call_uuid>/{_kind}", view_func=idempotent(_action(_kind)),
                    methods=["POST"])


def _finish_transfer(how: str):
    def view(auth_id: str, call_uuid: str, transfer_uuid: str):
        _live(auth_id, call_uuid)
        return call_actions.finish_transfer(ctx.redis(), ctx.account_id(), call_uuid,
                                            transfer_uuid, how)
    view.__name__ = f"transfer_{how}"
    return view


for _how in ("complete", "cancel"):
    bp.add_url_rule(f"/calls/<call_uuid>/transfer/<transfer_uuid>/{_how}",
                    view_func=idempotent(_finish_transfer(_how)), methods=["POST"])


@bp.delete("/calls/<call_uuid>/record")
def stop_record(auth_id: str, call_uuid: str):
    _live(auth_id, call_uuid)
    rec = call_actions.stop_recording(ctx.redis(), ctx.account_id(), call_uuid)
    wait = current_app.config.get("RECORD_STOP_WAIT", RECORD_STOP_WAIT)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        rec = Recording.get_by_id(rec.id)
        if rec.status == "stopped":
            return call_actions.stopped_json(rec, ctx.base_url())
        if rec.status == "failed":
            raise UpstreamError("record-failed", "the recording could not be finished",
                                {"recording_uuid": rec.id, "reason": rec.error})
    # The engine stops it when it gets to it; GET .../actions/{recording_uuid} follows it.
    return {"recording_uuid": rec.id, "status": "stopping"}, 202


@bp.get("/calls")
def list_live(auth_id: str):
    _own(auth_id)
    live = call_actions.live_calls(ctx.redis(), ctx.account_id())
    return {"calls": live, "count": len(live)}


@bp.get("/calls/<call_uuid>/actions/<action_uuid>")
def get_action(auth_id: str, call_uuid: str, action_uuid: str):
    _own(auth_id)
    out = call_actions.action_json(ctx.redis(), ctx.account_id(), call_uuid, action_uuid)
    if out is None:
        raise NotFound("action-not-found", f"no action {action_uuid!r} on this call",
                       {"action_uuid": action_uuid})
    return out


@bp.get("/recordings/<recording_file>")
def recording_file(auth_id: str, recording_file: str):
    _own(auth_id)
    rec_id, _, fmt = recording_file.rpartition(".")
    rec = Recording.get_or_none(Recording.id == rec_id, Recording.account == ctx.account_id())
    if rec is None or rec.format != fmt or rec.status != "stopped" or not rec.file_path \
            or not os.path.isfile(rec.file_path):
        raise NotFound("recording-not-found", f"no recording {recording_file!r}",
                       {"recording": recording_file})
    return send_file(rec.file_path, mimetype=MIMETYPES[fmt], max_age=0)


def _own(auth_id: str) -> None:
    if auth_id != ctx.account_id():
        raise Forbidden("forbidden", "auth_id must be the account of the API key",
                        {"auth_id": auth_id})
