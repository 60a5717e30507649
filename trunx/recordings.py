"""Live-call recordings, the part both processes share: where the files live, the JSON form,
and the retention purge.

    MixMonitor (Asterisk) -> <asterisk_recording_spool>/<id>.wav      raw, both sides mixed
    engine (sox)          -> <data_dir>/recordings/<account>/<id>.<mp3|wav>, row updated
    API                   -> GET /v1/voice/accounts/{auth_id}/recordings/<id>.<fmt>

Recordings are kept `recording_retention_days` (30 by default) from their start and then
purged with their rows: the engine runs `purge_expired` every `recording_purge_interval`.
"""
from __future__ import annotations

import datetime as dt
import logging
import os

from trunx.models import Recording, utcnow

log = logging.getLogger(__name__)

ACTIVE = ("starting", "recording")
FINAL = ("stopped", "failed")


def spool_file(config, recording_id: str) -> str:
    """The raw MixMonitor file as this host sees it."""
    return os.path.join(config.recording_spool_path, f"{recording_id}.wav")


def asterisk_spool_file(config, recording_id: str) -> str:
    """The same file as Asterisk names it (MixMonitor's argument)."""
    return f"{config.asterisk_recording_spool_path.rstrip('/')}/{recording_id}.wav"


def final_file(config, account_id: str, recording_id: str, fmt: str) -> str:
    return os.path.join(config.recordings_path, account_id, f"{recording_id}.{fmt}")


def url(base_url: str, rec: Recording) -> str:
    return (f"{base_url.rstrip('/')}/v1/voice/accounts/{rec.account_id}/recordings/"
            f"{rec.id}.{rec.format}")


def active_for_call(call_id: str) -> Recording | None:
    return (Recording.select().where(Recording.call_id == call_id,
                                     Recording.status.in_(ACTIVE))
            .order_by(Recording.created_at.desc()).first())


def purge_expired(config, now: dt.datetime | None = None) -> int:
    """Delete recordings (files and rows) older than the retention; returns how many.
    Blocking: the engine runs it on its database thread."""
    cutoff = (now or utcnow()) - dt.timedelta(days=config.recording_retention_days)
    old = list(Recording.select().where(Recording.created_at < cutoff))
    for rec in old:
        for path in (rec.file_path, spool_file(config, rec.id)):
            if path:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:     # the row goes anyway: nothing would serve it
                    log.warning("recording %s: could not delete %s: %s", rec.id, path, exc)
    if old:
        Recording.delete().where(Recording.id.in_([r.id for r in old])).execute()
        log.info("purged %d recording(s) older than %d days", len(old),
                 config.recording_retention_days)
    return len(old)
