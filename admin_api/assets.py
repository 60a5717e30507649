"""Audio assets: from a rendered WAV to a staged file, a row, and IVRs that play it.

Order matters so that a failure leaves nothing behind: keep a master copy, stage it to
Asterisk, then insert the row in a transaction; any failure undoes the earlier steps
(including the cache entry, when this request rendered it).
Deleting stages the removal first, so an SFTP outage fails the delete instead of orphaning
a remote file.

IVR nodes may name audio by asset id or by asset name. A name reference compiles to the
newest asset of that name, so creating an asset republishes the IVRs naming it (calls
start playing it at once) and deleting one republishes them again (they fall back to an
older asset of that name, or to an Asterisk sound of that name).
"""
from __future__ import annotations

import logging
import os
import shutil

from admin_api import observe, quotas
from trunx.errors import TooMany
from trunx.ivr import program as ivr_program
from trunx.ivr import store as ivr_store
from trunx.ivr import tree as ivr_tree
from trunx.media import (
    MediaError,
    asterisk_path,
    make_stager,
    pipeline,
    render_tts,
)
from trunx.models import AudioAsset, Ivr, IvrVersion, new_id

log = logging.getLogger("trunx.admin_api.assets")


def as_json(asset: AudioAsset, base_url: str) -> dict:
    return {"id": asset.id, "name": asset.name, "url": f"{base_url}/audio/{asset.id}/file",
            "durationSeconds": round(asset.duration_seconds, 2)}


def master_path(config, asset_id: str) -> str:
    """This host's copy, served by GET /audio/{id}/file; lives as long as the asset."""
    return os.path.join(config.data_dir, "audio", asset_id + ".wav")


def synthesize(text: str, voice: str | None, config, *,
               engine: str | None = None) -> tuple[pipeline.Rendered, list]:
    """TTS on `engine` (default: the configured one). The seed pages give ElevenLabs voice
    ids and names ("rachel"); the embedded engines (espeak-ng, the local neural voice) have
    no such voices, so there an unknown voice falls back to the default one, and the answer
    says so in a warning."""
    warnings = []
    provider = pipeline.pick_provider(engine, config)
    local = pipeline.backend(provider, config)
    if voice is not None and local != "elevenlabs":
        try:
            pipeline.check_voice(local, voice, config)
        except MediaError:
            used = pipeline.check_voice(local, None, config)
            name = "standard engine (espeak-ng)" if local == "standard" else \
                "local neural engine (Piper)"
            warnings.append({"field": "voice", "code": "voice-substituted",
                             "message": f"the {name} has no voice {voice!r}; used {used!r}"})
            voice = None
    rendered = render_tts(text, voice, provider, None, config)
    observe.tts_rendered(rendered)
    return rendered, warnings


def create(store, account_id: str, name: str, rendered: pipeline.Rendered, config, *,
           source: str, text: str | None = None) -> AudioAsset:
    try:
        quotas.check_audio(account_id, rendered.duration_seconds, config)
    except TooMany:
        if not rendered.cached:   # rendered for this request only: leave no trace of it
            _quietly(os.unlink, rendered.path)
        raise
    asset_id = new_id("aud")
    master = master_path(config, asset_id)
    _link_or_copy(rendered.path, master)
    stager = make_stager(config)
    try:
        stager.put(master, asset_id)
        try:
            with store.db.atomic():
                asset = AudioAsset.create(
                    id=asset_id, account=account_id, name=name, source=source, text=text,
                    voice=rendered.voice, provider=rendered.provider,
                    content_hash=rendered.content_hash,
                    duration_seconds=rendered.duration_seconds, file_path=master)
        except BaseException:
            _quietly(stager.delete, asset_id)
            raise
    except BaseException:
        _quietly(os.unlink, master)
        if not rendered.cached:   # rendered for this request only: leave no trace of it
            _quietly(os.unlink, rendered.path)
        raise
    republish_naming(store, account_id, name, config)
    return asset


def delete(store, asset: AudioAsset, config) -> None:
    make_stager(config).delete(asset.id)
    with store.db.atomic():
        asset.delete_instance()
    _quietly(os.unlink, asset.file_path)
    republish_naming(store, asset.account_id, asset.name, config)


def current_versions(account_id: str):
    """(Ivr, IvrVersion) for each IVR's current version in the account."""
    rows = current_versions_query(account_id).order_by(Ivr.created_at, Ivr.id)
    return [(row.ivr, row) for row in rows]


def current_versions_query(account_id: str):
    """The select behind current_versions, unordered (the IVR list pages it)."""
    return (IvrVersion.select(IvrVersion, Ivr).join(Ivr)
            .where(Ivr.account == account_id, IvrVersion.version == Ivr.current_version))


def users(asset: AudioAsset, config) -> list[str]:
    """Ids of IVRs whose current version plays `asset`, whether its nodes name the asset by
    id or by name (the compiled form says which asset a name resolved to)."""
    played = asterisk_path(asset.id, config)
    out = []
    for ivr, version in current_versions(asset.account_id):
        plays = set()
        for node in ivr_program.decode(version.compiled).nodes.values():
            plays.update((node.audio, getattr(node, "invalid_audio", None)))
        if played in plays or asset.id in ivr_tree.audio_refs(version.definition):
            out.append(ivr.ivr_id)
    return out


def republish_naming(store, account_id: str, name: str, config) -> list[str]:
    """Publish a new version of each IVR whose nodes refer to audio `name`, so the name
    resolves again. An IVR that no longer compiles is left on its version and logged."""
    done = []
    for ivr, version in current_versions(account_id):
        if name not in ivr_tree.audio_refs(version.definition):
            continue
        try:
            ivr_store.save(store, account_id, ivr.ivr_id, version.definition, config,
                           create=False)
            done.append(ivr.ivr_id)
        except ivr_store.InvalidTree as exc:
            log.warning("IVR %s not republished after audio %r changed: %s",
                        ivr.ivr_id, name, exc)
    return done


def _link_or_copy(src: str, dst: str) -> None:
    # A hard link costs no space and outlives the cache entry; a copy when across devices.
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _quietly(fn, *args) -> None:
    """Undo a step while another error is already on its way to the client."""
    try:
        fn(*args)
    except FileNotFoundError:
        pass
    except Exception:  # the original error is the one to report; this one is logged
        log.exception("cleanup %s%r failed", getattr(fn, "__name__", fn), args)
