"""Outbound calls, the part both processes share: the statuses, a duration's two forms,
time conversions, the account's webhook secret, and the one JSON form of a call (the API's
GET and the engine's webhooks both use it). Placing a call is the API's
(admin_api/voice/service.py); moving it along is the engine's (agi_server/ami/dialer.py,
tracker.py):

    initiated -> ringing -> answered -> completed
             \\-> failed (end_reason: busy, no-answer, congestion, rejected, ...)
"""
from __future__ import annotations

import datetime as dt
import math
import re
import secrets

from trunx.errors import invalid
from trunx.models import Account, Call, iso, utcnow

FINAL = ("completed", "failed")
STATUSES = ("initiated", "ringing", "answered", *FINAL)
MAX_DURATION_LIMIT = 24 * 3600        # seconds; longer is a mistake, not a call
# the form; the range is checked after (the API's schema says both: trunx.patterns.DURATION)
_DURATION = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,3})?s", re.ASCII)


# -- validation -------------------------------------------------------------------------
def parse_duration(value, field: str = "maxDuration") -> float | None:
    """"300s" (the seed's form) or a number of seconds -> seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, str) and _DURATION.fullmatch(value):
        seconds = float(value[:-1])     # the protobuf Duration form, "300s"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise invalid(field, "invalid-duration",
                      f'{field} must be a duration in seconds like "300s"')
    if not 1 <= seconds <= MAX_DURATION_LIMIT:
        raise invalid(field, "out-of-range",
                      f"{field} must be between 1s and {MAX_DURATION_LIMIT}s")
    return seconds


def utc_from_ts(ts: float) -> dt.datetime:
    """Epoch seconds (AMI's Timestamp) -> the naive UTC datetime the models store."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


def ts_from_utc(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


# -- placing a call -------------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def ensure_webhook_secret(account_id: str) -> str:
    """The account's webhook signing secret, made on first use."""
    Account.update(webhook_secret=new_webhook_secret()).where(
        Account.id == account_id, Account.webhook_secret.is_null()).execute()
    return Account.get_by_id(account_id).webhook_secret


def webhook_secrets(account_id: str) -> tuple[str, ...]:
    """What the account's webhooks are signed with: its secret (made on first use), then,
    for a while after a rotation, the one before it (trunx/webhook_sign.py)."""
    current = ensure_webhook_secret(account_id)
    account = Account.get_by_id(account_id)
    until = account.webhook_secret_previous_until
    if account.webhook_secret_previous and until is not None and until > utcnow():
        return (current, account.webhook_secret_previous)
    return (current,)


def rotate_webhook_secret(account_id: str, overlap_seconds: float) -> Account:
    """A new secret; the old one keeps signing for `overlap_seconds` (receivers move over
    in that time)."""
    account = Account.get_by_id(account_id)
    old = account.webhook_secret
    Account.update(webhook_secret=new_webhook_secret(), webhook_secret_previous=old,
                   webhook_secret_previous_until=(
                       utcnow() + dt.timedelta(seconds=overlap_seconds) if old else None)
                   ).where(Account.id == account_id).execute()
    return Account.get_by_id(account_id)


# -- the one JSON form ------------------------------------------------------------------
def call_json(call: Call, *, queue_position: int | None = None,
              base_url: str | None = None) -> dict:
    """The seed's GET /api/voice/{id} fields first, then trunx's additions. `base_url`
    prefixes recording URLs (empty: a path on the API)."""
    if call.status in FINAL:
        duration = round(call.duration or 0)
    else:
        duration = None
    out = {
        "id": call.id, "from": call.from_number, "to": call.to_number,
        "status": call.status, "provider": call.provider, "direction": call.direction,
        "duration": duration, "createdAt": iso(call.created_at),
    }
    if call.ai is not None:
        result = call.ai_result or {}
        out["ai"] = {"status": result.get("status", "pending"),
                     "transcript": result.get("transcript"),
                     "duration": result.get("duration"),
                     "endReason": result.get("endReason")}
    out["callId"] = call.call_sid
    if call.agent_id:
        out["agentId"] = call.agent_id
    out["answeredAt"] = iso(call.answered_at)
    out["endedAt"] = iso(call.ended_at)
    out["endReason"] = call.end_reason
    if call.amd is not None:      # asked for: null until detection decides
        out["answeredBy"] = call.answered_by
    if call.metadata:
        out["metadata"] = call.metadata
    if call.status == "initiated" and call.queued_at is not None:
        out["queuedAt"] = iso(call.queued_at)
        if queue_position is not None:
            out["queuePosition"] = queue_position
    recs = recordings_json(call.id, base_url or "")
    if recs:
        out["recordings"] = recs
    return out


def recordings_json(call_id: str, base_url: str) -> list[dict]:
    """The call's recordings (Call Actions' record), as the call details show them: the URL
    serves the file once `status` is `stopped`."""
    from trunx import recordings
    from trunx.models import Recording

    rows = (Recording.select().where(Recording.call_id == call_id)
            .order_by(Recording.created_at))
    return [{"recording_uuid": r.id, "status": r.status, "format": r.format,
             "url": recordings.url(base_url, r),
             "duration": None if r.duration is None else round(r.duration)} for r in rows]
