"""Quotas per account, so one account cannot crowd out the others (0 in the config: no
limit). Each refusal is 429 with a stable code and what was counted:

    rate-limited     api_rate_limit requests per second, counted in Redis (one key per
                     account and second) so every API worker shares the count, in leases
                     of several tokens (admin_api/rate_limit.py); Retry-After: 1
    quota-exceeded   max_queued_calls (calls still `initiated`), max_concurrent_calls
                     (ringing or answered), audio_quota_bytes (stored audio)

Queued and live calls are counted from the record at the moment a call is placed: two
requests racing may pass together and overshoot by one each, which a quota can bear.
"""
from __future__ import annotations

import peewee

from trunx import db
from trunx.errors import TooMany
from trunx.models import AudioAsset, Call

WAV_BYTES_PER_SECOND = 16_000     # the stored masters: 8 kHz mono 16-bit WAV
WAV_HEADER = 44


def _over(quota: str, used: int, limit: int, message: str) -> TooMany:
    return TooMany("quota-exceeded", message, {"quota": quota, "limit": limit, "used": used})


_COUNTED = ("initiated", "ringing", "answered")
# both counts in one query with its SQL built once ("": the account id, then _COUNTED):
# two peewee counts cost ~0.7 ms of a POST /api/voice that the campaign bench waits on.
# COUNT(*), not COUNT(id): answered from the (account, status) index alone (migration
# 5), without reading a call row per queued call as a burst's queue grows
_CALL_COUNTS = db.Prepared(lambda: (
    Call.select(Call.status, peewee.fn.COUNT(peewee.SQL("*")))
    .where(Call.account == "", Call.status.in_(_COUNTED)).group_by(Call.status)))


def check_calls(account_id: str, config) -> None:
    """Before a call is placed: the account's queued and live outbound calls."""
    if config.max_queued_calls <= 0 and config.max_concurrent_calls <= 0:
        return
    counts = dict(_CALL_COUNTS.rows(Call._meta.database, account_id, *_COUNTED))
    if config.max_queued_calls > 0:
        queued = counts.get("initiated", 0)
        if queued >= config.max_queued_calls:
            raise _over("queued_calls", queued, config.max_queued_calls,
                        f"this account already has {queued} calls waiting to be placed "
                        f"(at most {config.max_queued_calls}); try again when some have gone")
    if config.max_concurrent_calls > 0:
        live = counts.get("ringing", 0) + counts.get("answered", 0)
        if live >= config.max_concurrent_calls:
            raise _over("concurrent_calls", live, config.max_concurrent_calls,
                        f"this account has {live} calls in progress (at most "
                        f"{config.max_concurrent_calls})")


def audio_bytes(account_id: str) -> int:
    """The account's stored audio, by its masters' length (8 kHz mono 16-bit WAV)."""
    seconds, count = (AudioAsset.select(peewee.fn.COALESCE(peewee.fn.SUM(
        AudioAsset.duration_seconds), 0), peewee.fn.COUNT(AudioAsset.id))
        .where(AudioAsset.account == account_id).scalar(as_tuple=True))
    return int(seconds * WAV_BYTES_PER_SECOND) + count * WAV_HEADER


def check_audio(account_id: str, new_seconds: float, config) -> None:
    """Before an asset is stored: the account's audio with the new one."""
    limit = config.audio_quota_bytes
    if limit <= 0:
        return
    used = audio_bytes(account_id)
    adding = int(new_seconds * WAV_BYTES_PER_SECOND) + WAV_HEADER
    if used + adding > limit:
        raise _over("audio_bytes", used, limit,
                    f"this account stores {used} bytes of audio; {adding} more would pass "
                    f"its quota of {limit}; delete some first")
