"""Blind transfer of a call its AGI session holds, and the hand-off once a transfer is answered.

    blind     the do-not-call check, then EXEC Dial(<target>, transfer_timeout) in the session
              (agi_server.calls.control formats the target); while the Dial runs the session
              is bridged and other actions reach the call over AMI. The caller ID is swapped
              for the transfer if asked, and put back if the caller returns.
    hand-off  AMI DialEnd ANSWER for the session's channel (or the Dial's own ANSWER if AMI
              missed the event): the call is the target's now. The action says answered, the
              live index says transferred (the API answers 409 from then on), the call's
              owner is told (`on_handoff`: an outbound call ends for us, an inbound record
              says transferred), and `answer_url` gets a signed webhook, kept as a
              CallEvent and delivered by the status webhooks' sender (at least once,
              redelivered after a restart).
    failed    any other DIALSTATUS: the caller is back on the call, the action says why.

An attended transfer is agi_server.calls.attended; a transfer of a call already in a bridge
is agi_server.calls.bridged. The pending transfer lives on the session (`s.transfer`), found
from DialEnd's Uniqueid through the registry's channel index.
"""
from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time

from agi_server.agi import commands
from agi_server.agi.errors import AGIHangup
from agi_server.calls import control
from trunx.calls import utc_from_ts, webhook_secrets
from trunx.models import Call, CallEvent, iso

log = logging.getLogger(__name__)


async def blind(runner, s, action_id: str, p: dict) -> tuple[str, dict]:
    to = p["to"]
    if await control.is_suppressed(s.account, to, redis=runner.redis, db=runner._db):
        return "failed", {"code": "number-suppressed",
                          "message": f"{to} is on this account's do-not-call list"}
    target = control.dial_string(to, runner.config.trunk_endpoint)
    original = None
    if p.get("caller_id"):
        original = await s.raw.get_variable("CALLERID(num)")
        await s.raw.run(commands.set_variable("CALLERID(num)", p["caller_id"]))
    s.transfer = (action_id, p)
    try:
        result = await control.dial(s.channel, target, int(runner.config.transfer_timeout))
        if result.caller_gone:
            raise AGIHangup("Dial: channel hung up")
    except AGIHangup:
        if s.handed_off:           # the caller hung up on the far end: it was theirs
            return "completed", {"to": to, "dial_status": "ANSWER"}
        raise
    finally:
        s.transfer = None
    if result.status == "ANSWER":
        if not s.handed_off:       # AMI missed DialEnd: say it now, late
            await hand_off(runner, s, action_id, p, time.time())
        with contextlib.suppress(AGIHangup):
            await s.raw.hangup()   # the bridge is over: so is the call
        return "completed", {"to": to, "dial_status": result.status}
    if original is not None:
        await s.raw.run(commands.set_variable("CALLERID(num)", original))
    log.info("call %s: transfer to %s failed (%s); back to the call", s.call_id, to,
             result.status)
    return "failed", {"code": "transfer-failed", "dial_status": result.status,
                      "message": f"the transfer to {to} ended with {result.status}; the "
                                 "caller is back on the call"}


def on_dial_end(runner, event: dict) -> None:
    """AMI listener: a Dial answered for a session with a blind transfer in flight."""
    if event.get("Event") != "DialEnd" or event.get("DialStatus") != "ANSWER":
        return
    s = runner.session_for_channel(event.get("Uniqueid", ""))
    if s is None or s.transfer is None or s.handed_off:
        return
    action_id, p = s.transfer
    runner.run_soon(hand_off(runner, s, action_id, p, _ts(event)))


async def hand_off(runner, s, action_id: str, p: dict, at: float) -> None:
    if s.handed_off:
        return
    s.handed_off = True
    log.info("call %s: transferred to %s", s.call_id, p["to"])
    await runner.state(action_id, status="answered", answered_at=iso(utc_from_ts(at)))
    runner.index.update(s.call_id, status="transferred")   # the API now answers 409
    if s.on_handoff is not None:
        try:
            await s.on_handoff(at)
        except Exception:
            log.exception("call %s: transfer hand-off not recorded", s.call_id)
    if p.get("answer_url"):
        await _answer_webhook(runner, s, action_id, p, at)


async def _answer_webhook(runner, s, action_id: str, p: dict, at: float) -> None:
    body = json.dumps({"type": "call.transfer", "status": "answered",
                       "transfer_uuid": action_id, "call_uuid": s.call_id, "to": p["to"],
                       "caller_id": p.get("caller_id"), "at": iso(utc_from_ts(at))},
                      separators=(",", ":"))
    try:
        secret = runner.config.webhook_secret or await runner._db(webhook_secrets,
                                                                   s.account)
    except Exception:
        log.exception("call %s: no webhook secret; answer_url not called", s.call_id)
        return
    # A CallEvent row, like the status webhooks: redelivered after a restart until
    # delivered (the call has its row from its start, inbound calls too)
    event_id = "evt_" + secrets.token_hex(8)
    try:
        if not await runner._db(_keep, event_id, s.call_id, p["answer_url"], body):
            log.warning("call %s: no row yet; answer_url retried in memory only", s.call_id)
    except Exception:
        log.exception("call %s: answer_url event not stored; retried in memory only",
                      s.call_id)
    runner.webhooks.submit({"event": event_id, "call": s.call_id, "account": s.account,
                            "url": p["answer_url"], "body": body, "secret": secret})


def _keep(event_id: str, call_id: str, url: str, body: str) -> bool:
    """Database thread: the webhook as a CallEvent (type call.transfer) with its body."""
    if not Call.select().where(Call.id == call_id).exists():
        return False
    CallEvent.create(id=event_id, call=call_id, type="call.transfer", status="answered",
                     webhook_url=url, payload=body)
    return True


def _ts(event: dict) -> float:
    try:
        return float(event.get("Timestamp") or 0) or time.time()
    except ValueError:
        return time.time()
