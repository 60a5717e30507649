"""Audio API (seed 000): POST /audio, POST /audio/upload, GET /audio,
GET /audio/{id}/file, DELETE /audio/{id}."""
from __future__ import annotations

import os

from flask import Blueprint, request, send_file

from admin_api import assets
from admin_api import context as ctx
from admin_api.pagination import paginate
from trunx.errors import Conflict, NotFound, TooLarge, Unsupported, invalid
from trunx.media import prepare_upload
from trunx.models import AudioAsset

bp = Blueprint("audio", __name__, url_prefix="/audio")
NAME_MAX = 200


def get_owned(audio_id: str) -> AudioAsset:
    asset = AudioAsset.get_or_none(AudioAsset.id == audio_id,
                                   AudioAsset.account == ctx.account_id())
    if asset is None:
        raise NotFound("audio-not-found", f"no audio asset {audio_id!r} in this account",
                       {"id": audio_id})
    return asset


def created(asset: AudioAsset, warnings: list):
    out = assets.as_json(asset, ctx.base_url())
    if warnings:
        out["warnings"] = warnings
    return out, 201


@bp.post("")
def create_tts():
    data = ctx.json_body(schema="TtsRequest")
    name, text = data["name"], data["text"]
    # engine is not in the seed: "standard" | "neural" (default: neural when a neural voice
    # is here)
    voice, engine = data.get("voice"), data.get("engine")
    rendered, warnings = assets.synthesize(text, voice, ctx.config(), engine=engine)
    asset = assets.create(ctx.store(), ctx.account_id(), name, rendered, ctx.config(),
                          source="tts", text=text)
    return created(asset, warnings)


@bp.post("/upload")
def upload():
    # a urlencoded form can't carry a file, but it is a form: answer "file is required"
    if request.mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise Unsupported("unsupported-media-type",
                          "send the file as multipart/form-data in a field named 'file'",
                          {"content_type": request.content_type or ""})
    file = request.files.get("file")
    if file is None:
        raise invalid("file", "required", "a multipart field named 'file' is required")
    limit = ctx.config().upload_max_bytes
    data = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge("payload-too-large", f"audio uploads are limited to {limit} bytes",
                       {"max_bytes": limit})
    name = request.form.get("name") or _basename(file.filename) or "upload"
    if len(name) > NAME_MAX:
        raise invalid("name", "too-long", f"name is longer than {NAME_MAX} characters")
    ctx.check_text("name", name)
    rendered = prepare_upload(data, ctx.config())
    asset = assets.create(ctx.store(), ctx.account_id(), name, rendered, ctx.config(),
                          source="upload")
    return created(asset, [])


@bp.get("")
def list_audio():
    page = paginate(AudioAsset.select().where(AudioAsset.account == ctx.account_id()),
                    "audio", AudioAsset.created_at, AudioAsset.id, default_limit=None)
    base = ctx.base_url()
    return {"audio": [assets.as_json(a, base) for a in page.rows], **page.fields()}


@bp.get("/<audio_id>/file")
def file(audio_id: str):
    asset = get_owned(audio_id)
    if not os.path.isfile(asset.file_path):
        raise NotFound("audio-file-missing",
                       "the asset's file is missing on this host; upload it again",
                       {"id": audio_id})
    return send_file(asset.file_path, mimetype="audio/wav",
                     download_name=f"{asset.id}.wav", max_age=0)


@bp.delete("/<audio_id>")
def delete(audio_id: str):
    asset = get_owned(audio_id)
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    if not force:
        in_use = assets.users(asset, ctx.config())
        if in_use:
            raise Conflict("audio-in-use",
                           "IVRs play this audio; update them first, or delete with "
                           "?force=true", {"ivrs": in_use})
    assets.delete(ctx.store(), asset, ctx.config())
    return {"deleted": True}


def _basename(filename: str | None) -> str:
    # Browsers send a bare name, some clients a path; the name is display text only.
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
