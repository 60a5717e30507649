"""The calling account itself (trunx's addition): its default webhook URL, the secret
call webhooks are signed with (see trunx/webhook_sign.py), and its default transfer target
(where an IVR transfer node naming no `to` or `agent` sends the caller; see
trunx/ivr/transfer_target.py)."""
from __future__ import annotations

from flask import Blueprint

from admin_api import context as ctx
from admin_api.voice import service as voice_service
from trunx import calls
from trunx.errors import Conflict
from trunx.ivr import transfer_target
from trunx.models import Account, iso, utcnow

bp = Blueprint("account", __name__, url_prefix="/api/account")


def as_json(account: Account) -> dict:
    operator = bool(ctx.config().webhook_secret)
    return {"id": account.id, "name": account.name, "webhookUrl": account.webhook_url,
            # with an operator-wide secret configured, that one signs (and is not shown)
            "webhookSecret": None if operator else account.webhook_secret,
            "webhookSecretSource": "operator" if operator else "account",
            # after a rotation: until when the previous secret signs too
            "webhookSecretPreviousUntil": None if operator else _previous_until(account),
            "default_transfer": account.default_transfer,
            "createdAt": iso(account.created_at),
            # its own outbound limits (null: the operator's defaults): the engines' dialer
            # holds its calls to them, so its backlog never crowds out other accounts
            "maxConcurrentCalls": account.max_concurrent_calls,
            "callsPerSecond": account.calls_per_second}


def _previous_until(account: Account) -> str | None:
    until = account.webhook_secret_previous_until
    return iso(until) if account.webhook_secret_previous and until and until > utcnow() \
        else None


@bp.post("/webhook-secret")
def rotate_secret():
    """A new webhook secret; the old one signs too for `webhook_secret_overlap` seconds, so
    receivers can move over without missing a webhook."""
    if ctx.config().webhook_secret:
        raise Conflict("operator-webhook-secret",
                       "webhooks on this server are signed with the operator's secret "
                       "(webhook_secret); the operator rotates that one", {})
    calls.rotate_webhook_secret(ctx.account_id(), ctx.config().webhook_secret_overlap)
    return as_json(Account.get_by_id(ctx.account_id()))


@bp.get("")
def get():
    return as_json(Account.get_by_id(ctx.account_id()))


@bp.patch("")
def update():
    data = ctx.json_body(schema="AccountPatch")
    if "default_transfer" in data:
        target = transfer_target.check(ctx.account_id(), data["default_transfer"])
    limits = {}
    if "maxConcurrentCalls" in data:
        # stored as asked; the dialer holds the account to the operator's quota all the same
        # (the lower of the two: agi_server/cluster/limits.py)
        limits["max_concurrent_calls"] = data["maxConcurrentCalls"]
    if "callsPerSecond" in data:
        limits["calls_per_second"] = data["callsPerSecond"]
    if "webhookUrl" in data:
        url = voice_service.check_webhook_url(
            data["webhookUrl"], allow_private=ctx.config().webhook_allow_private)
        Account.update(webhook_url=url).where(Account.id == ctx.account_id()).execute()
        if url:
            calls.ensure_webhook_secret(ctx.account_id())
    if limits:
        Account.update(**limits).where(Account.id == ctx.account_id()).execute()
    if "default_transfer" in data:
        # the row first (the record), then Redis, where the engine reads it at call time
        Account.update(default_transfer=target).where(Account.id == ctx.account_id()).execute()
        transfer_target.publish(ctx.redis(), ctx.account_id(), target)
    return as_json(Account.get_by_id(ctx.account_id()))
