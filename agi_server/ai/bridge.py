"""The AI bridge: an answered outbound call meets its Ultravox agent over SIP.

agi_server.calls.outbound hands an answered AI call here (`run_ai_call(ch, call, config)`):

    1. create the Ultravox call with the SIP medium `incoming` (from the call's `ai` config,
       or, for an agent call, through the agent: POST /api/agents/{id}/calls); Ultravox
       answers with `joinUrl`, a SIP URI it waits for an INVITE on
    2. Dial that URI from the answered channel through a PJSIP endpoint
       (`PJSIP/<ultravox_sip_endpoint or trunk_endpoint>/<joinUrl>`): the callee and the
       agent now talk; the Dial returns when either side hangs up
    3. wait (at most `ultravox_end_wait` s) for Ultravox to report the call ended, fetch its
       messages and store on the Call row `ai_result` = {status, transcript ("Agent: ...\\n
       User: ..."), duration, endReason, ultravoxCallId}; GET /api/voice/{id} shows it as `ai`

Given a live call's channel facade (agi_server.calls.session.LiveChannel: outbound AI calls
and IVR transfers to an agent are action sessions), the Dial in step 2 puts the session in
bridged mode, so live-call actions reach the bridged call over AMI meanwhile.

`ai_result.status` moves starting -> active -> ended, or -> failed with endReason saying
why (an Ultravox error code, `dial-<DIALSTATUS>` when the SIP leg never answered). Ultravox
is called over blocking HTTP in a worker thread; the event loop never waits on it. The route
hangs the channel up when this returns; a callee who hung up first is no error here (the
results are collected all the same).
"""
from __future__ import annotations

import asyncio
import logging
import time

from agi_server.agi.errors import AGIHangup
from agi_server.calls import control
from trunx import ultravox
from trunx.errors import TrunxError
from trunx.models import Agent, Call
from trunx.ultravox import Ultravox, UltravoxError

log = logging.getLogger(__name__)

POLL = 0.5     # seconds between "has Ultravox ended the call yet?" questions


class BridgeError(TrunxError):
    """Why the bridge could not be built; `code` becomes ai_result.endReason. Never an API
    answer, so of no kind: the call it happens on simply ends with that reason."""


def dial_string(config, join_url: str) -> str:
    """The SIP leg to the agent (formatted and checked by agi_server.calls.control)."""
    sip_endpoint = config.ultravox_sip_endpoint or config.trunk_endpoint
    try:
        control.endpoint(sip_endpoint)
    except ValueError:
        raise BridgeError("bad-sip-endpoint",
                          f"not a PJSIP endpoint name: {sip_endpoint!r}") from None
    try:
        return control.uri_dial_string(sip_endpoint, join_url)
    except ValueError:
        raise BridgeError("bad-join-url", "Ultravox's joinUrl is not a plain SIP URI") from None


def _metadata(call: dict) -> dict:
    return {"trunxCallId": call["id"], **({"trunxCallSid": call["call_sid"]}
                                          if call.get("call_sid") else {})}


def _create(client: Ultravox, call: dict) -> dict:
    """Blocking: the Ultravox call for this trunx call (agent call or direct)."""
    ai = call.get("ai") or {}
    agent_id = call.get("agent_id")
    if agent_id:
        agent = Agent.get_or_none(Agent.id == agent_id)
        uv_agent = (agent.ultravox_id if agent else None) or ai.get("ultravoxAgentId")
        if not uv_agent:
            raise BridgeError("agent-not-found", f"agent {agent_id} no longer exists")
        body = ultravox.agent_call_body(
            max_duration=call.get("max_duration") or (agent.max_duration if agent else None),
            metadata={**(call.get("metadata") or {}), **_metadata(call)})
        return client.create_agent_call(uv_agent, body)
    if not ai.get("systemPrompt"):
        raise BridgeError("no-ai-config", "the call has neither an agent nor a systemPrompt")
    body = ultravox.call_body(ai, metadata={**(call.get("metadata") or {}), **_metadata(call)})
    if call.get("max_duration") and "maxDuration" not in body:
        body["maxDuration"] = ultravox.duration(call["max_duration"])
    return client.create_call(body)


def _store(call_id: str, result: dict) -> None:
    Call.update(ai_result=result).where(Call.id == call_id).execute()


def _finish(client: Ultravox, uv_call_id: str, wait: float) -> tuple[dict, list]:
    """Blocking: the ended Ultravox call (or its last state after `wait` s) and its
    messages."""
    deadline = time.monotonic() + wait
    state = client.get_call(uv_call_id)
    while not state.get("ended") and time.monotonic() < deadline:
        time.sleep(POLL)
        state = client.get_call(uv_call_id)
    return state, client.messages(uv_call_id)


async def run_ai_call(ch, call: dict, config, *, client: Ultravox | None = None) -> None:
    call_id = call["id"]
    await asyncio.to_thread(_store, call_id, ultravox.ai_result("starting"))
    own = client is None
    try:
        client = client or Ultravox.from_config(config)
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message)
        return
    try:
        await _run(ch, call, config, client)
    finally:
        if own:
            client.close()


async def _failed(call_id: str, code: str, message: str, uv_call_id: str | None = None,
                  **result) -> None:
    log.warning("call %s: AI bridge failed: %s (%s)", call_id, code, message)
    await asyncio.to_thread(_store, call_id, ultravox.ai_result(
        "failed", end_reason=code, ultravox_call_id=uv_call_id, **result))


async def _run(ch, call: dict, config, client: Ultravox) -> None:
    call_id = call["id"]
    try:
        created = await asyncio.to_thread(_create, client, call)
        uv_call_id = created.get("callId")
        dial = dial_string(config, created.get("joinUrl"))
    except (UltravoxError, BridgeError) as exc:
        await _failed(call_id, exc.code, getattr(exc, "message", str(exc)))
        return
    await asyncio.to_thread(_store, call_id, ultravox.ai_result(
        "active", ultravox_call_id=uv_call_id))
    log.info("call %s: bridging to Ultravox call %s", call_id, uv_call_id)

    caller_gone = False
    dial_status = None
    try:
        reply = await ch.exec("Dial", dial, str(int(config.transfer_timeout)))
        # Dial answers -1 when the calling channel hung up during it
        caller_gone = _code(reply) == -1 or getattr(ch.transport, "hung_up", False)
        if not caller_gone:
            dial_status = await ch.get_variable("DIALSTATUS")
    except AGIHangup:            # the callee hung up: collect what Ultravox has all the same
        caller_gone = True

    if not caller_gone and dial_status != "ANSWER":
        await _failed(call_id, f"dial-{(dial_status or 'unknown').lower()}",
                      "Ultravox's SIP side did not answer", uv_call_id)
        return
    try:
        state, messages = await asyncio.to_thread(_finish, client, uv_call_id,
                                                  float(config.ultravox_end_wait))
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message, uv_call_id)
        return
    reason = state.get("endReason") or ("hangup" if caller_gone else "agent_hangup")
    await asyncio.to_thread(_store, call_id, ultravox.ai_result(
        "ended", transcript=ultravox.transcript(messages),
        seconds=ultravox.call_seconds(state), end_reason=reason, ultravox_call_id=uv_call_id))
    if not state.get("ended"):
        log.warning("call %s: Ultravox had not ended call %s after %ss", call_id, uv_call_id,
                    config.ultravox_end_wait)


def _code(reply) -> int:
    try:
        return int(reply.result)
    except (AttributeError, TypeError, ValueError):
        return 0
