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
call's `ai_result.transfer` says how it went: {to, status (answer, busy, ...,
refused), reason?}.

The target is what the agent was configured with (trunx/ultravox_transfer.py: Ultravox's
coldTransfer takes its target as a parameter override, so the model cannot make one up):
an E.164 number, or `ivr~<ivr_id>~<node>`, an IVR node of the account. The dialplan takes
only those two shapes (`_+X.`, `_ivr~.`), so a REFER to anything else is refused there
(404 to the REFER: the agent's tool call fails and the caller stays with the agent). An
IVR target goes to `to_ivr` (the engine's: the caller's IVR walk resumes at that node,
on the call's own record; status `returned`).
"""
from __future__ import annotations

import logging

from agi_server.agi.errors import AGIHangup
from agi_server.calls import control
from agi_server.ivr.tree_cache import TreeUnavailable
from trunx import ultravox_transfer
from trunx.models import Call

log = logging.getLogger(__name__)

CONTEXT = "trunx-ai-transfer"


def channel_variables(call: dict) -> list[tuple[str, str]]:
    """What the bridge sets on the caller's channel before it dials the agent (`__`: the
    leg to Ultravox inherits them, and res_pjsip_refer reads TRANSFER_CONTEXT there)."""
    return [("__TRANSFER_CONTEXT", CONTEXT), ("__TRUNX_AI_CALL", call["id"]),
            ("__TRUNX_ACCOUNT", str(call.get("account") or ""))]


def note(call_id: str, transfer: dict) -> None:
    """Blocking: what became of the agent's transfer, on the call's ai_result."""
    row = Call.get_or_none(Call.id == call_id)
    if row is not None:
        result = dict(row.ai_result or {})
        result["transfer"] = transfer
        Call.update(ai_result=result).where(Call.id == call_id).execute()


async def run_transfer(ch, config, *, redis, db, to_ivr=None) -> None:
    """The `ai-transfer` route: the caller, blind-transferred by the agent's REFER.
    `to_ivr(ch, call_id, account, (ivr_id, node))` carries out an IVR target."""
    user = ch.env.get("agi_extension", "")
    call_id = await ch.get_variable("TRUNX_AI_CALL") or ""
    account = await ch.get_variable("TRUNX_ACCOUNT") or ""
    target = ultravox_transfer.from_sip_user(user)
    if isinstance(target, tuple):
        if to_ivr is None:
            await refuse(ch, db, call_id, ultravox_transfer.written(target), "no-ivr")
            return
        log.info("call %s: the agent sends the caller back to IVR %s at %s", call_id,
                 *target)
        await to_ivr(ch, call_id, account, target)
        return
    if target is None:
        await refuse(ch, db, call_id, user, "not-a-target")
        return
    to = target
    if account and await control.is_suppressed(account, to, redis=redis, db=db):
        await refuse(ch, db, call_id, to, "number-suppressed")
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
        await db(note, call_id, {"to": to, "status": status})
    try:
        await ch.hangup()
    except AGIHangup:
        pass


async def return_program(cache, record, ivr_id: str, node: str):
    """The Program a caller the agent sends back to `ivr_id`/`node` walks, and why it is
    not that node (None: it is): the IVR the call came through on its pinned version,
    another IVR of the account on its current one; a node (or IVR) gone since the agent
    was saved falls back to that IVR's (or the call's own IVR's) entry. (None, reason)
    when there is nothing to walk."""
    try:
        own = await cache.version(record.account, record.ivr_id, record.ivr_version)
        program = (own if ivr_id == record.ivr_id
                   else await cache.current(record.account, ivr_id))
    except TreeUnavailable:
        return None, "tree-unavailable"
    if program is None:
        return own, "unknown-ivr"
    if node not in program.nodes:
        return program, "unknown-node"
    return program, None


async def refuse(ch, db, call_id: str, to: str, reason: str) -> None:
    """The transfer cannot be carried out: noted on the call, and the caller hung up on
    (they are no longer with the agent)."""
    log.warning("call %s: agent transfer to %r refused: %s", call_id, to, reason)
    if call_id:
        await db(note, call_id, {"to": to, "status": "refused", "reason": reason})
    try:
        await ch.hangup()
    except AGIHangup:
        pass
