"""The agent's cold transfer, carried out on our side of the SIP leg.

Ultravox's call-transfers guide (https://docs.ultravox.ai/telephony/call-transfers): on a
SIP call a transfer can use "the SIP REFER verb ... to connect the caller with the human
operator, removing the agent and related SIP stack altogether". The agent's built-in
`coldTransfer` tool therefore reaches trunx's Asterisk as a REFER on the leg to Ultravox.

res_pjsip_refer makes that a blind transfer of the other party, our caller, into the
dialplan context named by the transferring channel's TRANSFER_CONTEXT; the bridge sets
`__TRANSFER_CONTEXT=trunx-ai-transfer` (inherited by the leg to Ultravox), with the trunx
call and account as `__TRUNX_AI_CALL` and `__TRUNX_ACCOUNT`. `[trunx-ai-transfer]`
(dialplan/extensions.conf) hands the caller to this route (`ai-transfer`), which checks
the Refer-To number and the account's do-not-call list and dials it over the trunk; the
call's `ai_result.transfer` says how it went: {to, status (answered, busy, ...,
refused), reason?}.
"""
from __future__ import annotations

import logging

from agi_server.agi.errors import AGIHangup
from agi_server.calls import control
from trunx.models import Call
from trunx.phone import is_e164

log = logging.getLogger(__name__)

CONTEXT = "trunx-ai-transfer"


def channel_variables(call: dict) -> list[tuple[str, str]]:
    """What the bridge sets on the caller's channel before it dials the agent (`__`: the
    leg to Ultravox inherits them, and res_pjsip_refer reads TRANSFER_CONTEXT there)."""
    return [("__TRANSFER_CONTEXT", CONTEXT), ("__TRUNX_AI_CALL", call["id"]),
            ("__TRUNX_ACCOUNT", str(call.get("account") or ""))]


def _note(call_id: str, transfer: dict) -> None:
    row = Call.get_or_none(Call.id == call_id)
    if row is not None:
        result = dict(row.ai_result or {})
        result["transfer"] = transfer
        Call.update(ai_result=result).where(Call.id == call_id).execute()


async def run_transfer(ch, config, *, redis, db) -> None:
    """The `ai-transfer` route: the caller, blind-transferred by the agent's REFER."""
    to = ch.env.get("agi_extension", "")
    call_id = await ch.get_variable("TRUNX_AI_CALL") or ""
    account = await ch.get_variable("TRUNX_ACCOUNT") or ""
    if not is_e164(to):
        await _refuse(ch, db, call_id, to, "not-a-number")
        return
    if account and await control.is_suppressed(account, to, redis=redis, db=db):
        await _refuse(ch, db, call_id, to, "number-suppressed")
        return
    log.info("call %s: the agent transfers the caller to %s", call_id, to)
    try:
        result = await control.dial(ch, control.dial_string(to, config.trunk_endpoint),
                                    int(config.transfer_timeout))
    except AGIHangup:
        result = None
    # DIALSTATUS says whether the target answered; Dial's -1 after an answered call only
    # means the bridge ended, so "caller-gone" is for calls that never got that far
    if result is not None and result.status == "ANSWER":
        status = "answer"
    elif result is None or result.caller_gone:
        status = "caller-gone"
    else:
        status = result.status.lower()
    if call_id:
        await db(_note, call_id, {"to": to, "status": status})
    try:
        await ch.hangup()
    except AGIHangup:
        pass


async def _refuse(ch, db, call_id: str, to: str, reason: str) -> None:
    log.warning("call %s: agent transfer to %r refused: %s", call_id, to, reason)
    if call_id:
        await db(_note, call_id, {"to": to, "status": "refused", "reason": reason})
    try:
        await ch.hangup()
    except AGIHangup:
        pass
