"""The AI bridge: an answered call meets its Ultravox agent over SIP, the way Ultravox's
SIP guide documents it (trunx/ultravox_sip.py quotes it).

agi_server.calls.outbound hands an answered AI call here (`run_ai_call(ch, call, config)`),
and the engine an IVR caller whose transfer node names an agent:

    1. the caller hears music on hold while the agent is found: the call's own agent
       (its Ultravox id), or for a plain `systemPrompt` call the agent trunx manages for
       that configuration (GET /api/agents?search=<name>, else POST /api/agents); for the
       allowlist admission, the account's SIP domain (GET /api/sip)
    2. Dial the agent's SIP user from the answered channel
       (`PJSIP/<endpoint>/sip:agent_<id>@<domain>`, or `PJSIP/agent_<id>@<endpoint>` when
       Ultravox registers with us); Dial's `m` keeps the hold music until the agent answers,
       `S(<max duration>)` ends the call at the call's limit. The INVITE makes Ultravox
       create the call from the agent's template
    3. meanwhile find that Ultravox call: the earliest call of the agent created since the
       Dial that no other bridge of this engine has taken (GET /api/calls?agentIds&fromDate)
    4. when the Dial returns, wait (at most `ultravox_end_wait` s) for Ultravox to report the
       call ended, fetch its messages and store on the Call row `ai_result` = {status,
       transcript ("Agent: ...\\nUser: ..."), duration, endReason, ultravoxCallId}; GET
       /api/voice/{id} shows it as `ai`

Given a live call's channel facade (agi_server.calls.session.LiveChannel: outbound AI calls
and IVR transfers to an agent are action sessions), the Dial in step 2 puts the session in
bridged mode, so live-call actions reach the bridged call over AMI meanwhile.

`ai_result.status` moves starting -> active -> ended, or -> failed with endReason saying
why (an Ultravox error code, `dial-<DIALSTATUS>` when the SIP leg never answered, which is
also what an INVITE Ultravox does not admit gives). Ultravox is called over blocking HTTP
in a worker thread; the event loop never waits on it. The route hangs the channel up when
this returns; a callee who hung up first is no error here.

Step 3 is exact for one engine per Ultravox account as long as two calls to the same agent
are not answered in the opposite order of their INVITEs; Ultravox documents no field that
carries our call's identity through an INVITE.

The outgoing flow (`_run_outgoing`; docs/ai.md) replaces steps 2-3 when the agent's prompt
uses `{{...}}` template variables, or for every call under `ultravox_sip_mode = outgoing`:
POST /api/agents/{id}/calls with the call's templateContext and metadata and the SIP
medium's outgoing form, `to` = sip:<one-time token>@<ultravox_outgoing_host>; the caller
dials Local/<token>@trunx-ai-meet and waits on hold music until Ultravox's INVITE, landing
in [trunx-ultravox-out], bridges itself to it. The call id comes back from the request.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

from agi_server.agi import commands
from agi_server.agi.errors import AGIHangup
from agi_server.ai import cold_transfer as ai_transfer
from trunx import ultravox_mapping, ultravox_sip, url_policy
from trunx.errors import TrunxError
from trunx.models import Agent, Call
from trunx.ultravox import Ultravox, UltravoxError

log = logging.getLogger(__name__)

POLL = 0.5     # seconds between questions to Ultravox
CLOCK_SKEW = 5.0   # seconds: a call "created since the Dial" by Ultravox's clock, give or take


class BridgeError(TrunxError):
    """Why the bridge could not be built; `code` becomes ai_result.endReason. Never an API
    answer, so of no kind: the call it happens on simply ends with that reason."""


class _Taken:
    """The Ultravox calls this engine's bridges have matched (bounded): a call is taken
    once. Bridges run in worker threads, hence the lock."""

    def __init__(self, size: int = 4096):
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()
        self._size = size

    def take(self, calls: list[dict]) -> str | None:
        with self._lock:
            for c in sorted(calls, key=lambda c: c.get("created") or ""):
                if c.get("callId") and c["callId"] not in self._ids:
                    self._ids[c["callId"]] = None
                    while len(self._ids) > self._size:
                        self._ids.pop(next(iter(self._ids)))
                    return c["callId"]
        return None


_taken = _Taken()


def _agent_for(client: Ultravox, call: dict) -> tuple[str, bool]:
    """Blocking: the Ultravox agent id the call goes to, and whether its template uses
    `{{...}}` template variables (then only the outgoing flow can fill them)."""
    ai = call.get("ai") or {}
    agent_id = call.get("agent_id")
    if agent_id:
        agent = Agent.get_or_none(Agent.id == agent_id)
        uv_agent = (agent.ultravox_id if agent else None) or ai.get("ultravoxAgentId")
        if not uv_agent:
            raise BridgeError("agent-not-found", f"agent {agent_id} no longer exists")
        templated = agent is not None and ultravox_mapping.uses_variables(
            ultravox_mapping.call_template(agent))
        return uv_agent, templated
    if not ai.get("systemPrompt"):
        raise BridgeError("no-ai-config", "the call has neither an agent nor a systemPrompt")
    template = ultravox_mapping.ai_template(ai, call.get("max_duration"))
    name = ultravox_mapping.managed_agent_name(template)
    # asked each time rather than cached: an agent deleted in the console is made again
    uv_agent = (client.find_agent(name) or client.create_agent(name, template))["agentId"]
    return uv_agent, ultravox_mapping.uses_variables(template)


def check_tool_urls(call: dict, config) -> None:
    """Blocking: the call's inline tools' URLs under the address policy again, now that
    they are handed to Ultravox (they were checked when the call was placed; a name can
    resolve elsewhere since). BridgeError `url-not-allowed` ends the AI leg before it
    starts."""
    for i, tool in enumerate((call.get("ai") or {}).get("tools") or []):
        url = ((tool or {}).get("http") or {}).get("baseUrlPattern")
        if not url:
            continue
        try:
            url_policy.check_input(url, config.webhook_allow_private, credentials=True)
        except url_policy.UrlRefused as exc:
            raise BridgeError("url-not-allowed", f"tools[{i}]: {exc.message}") from None


def _domain(client: Ultravox, config) -> str:
    """Blocking: the account's SIP domain (configured, else GET /api/sip)."""
    if config.ultravox_sip_domain:
        return config.ultravox_sip_domain
    domain = (client.get_sip() or {}).get("domain")
    if not domain:
        raise BridgeError("no-sip-domain", "Ultravox's SIP configuration names no domain")
    return domain


def dial_target(config, uv_agent: str, domain: str | None) -> str:
    endpoint = config.ultravox_sip_endpoint or config.trunk_endpoint
    try:
        return ultravox_sip.dial_target(config.ultravox_sip_mode, endpoint, uv_agent, domain)
    except ultravox_sip.SipSetupError as exc:
        raise BridgeError(exc.code, exc.message) from None


def dial_options(call: dict) -> str:
    """Dial's options: hold music until the agent answers; the call's own limit, if it has
    one that parses (a stored value that does not is ignored, not an error)."""
    seconds = ultravox_mapping.parse_duration(call.get("max_duration"))
    return f"mS({max(1, int(seconds))})" if seconds else "m"


def _claim(client: Ultravox, uv_agent: str, since: str, deadline: float,
           stop: threading.Event) -> str | None:
    """Blocking: the Ultravox call the INVITE created (see the module docstring)."""
    while True:
        taken = _taken.take(client.list_calls(agent_id=uv_agent, from_date=since))
        if taken or stop.is_set() or time.monotonic() >= deadline:
            return taken
        stop.wait(POLL)


def _store(call_id: str, result: dict) -> None:
    # what an agent's transfer noted (agi_server.ai.cold_transfer) stays
    row = Call.get_or_none(Call.id == call_id)
    if row is not None and (row.ai_result or {}).get("transfer"):
        result = {**result, "transfer": row.ai_result["transfer"]}
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


async def run_ai_call(ch, call: dict, config, *,
                      client: Ultravox | None = None) -> str | None:
    """Bridge the answered call to its agent until the AI leg ends. Returns where the
    agent's coldTransfer moved the caller (the REFER's user: a number, `ivr~<ivr>~<node>`),
    or None: then the caller is done with and the route hangs up; otherwise Asterisk takes
    the channel to `[trunx-ai-transfer]` as soon as this AGI session lets it go."""
    call_id = call["id"]
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result("starting"))
    own = client is None
    try:
        client = client or Ultravox.from_config(config)
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message)
        return None
    try:
        return await _run(ch, call, config, client)
    finally:
        if own:
            client.close()


async def _failed(call_id: str, code: str, message: str, uv_call_id: str | None = None,
                  **result) -> None:
    log.warning("call %s: AI bridge failed: %s (%s)", call_id, code, message)
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result(
        "failed", end_reason=code, ultravox_call_id=uv_call_id, **result))


async def _hold(ch, on: bool) -> None:
    try:
        await ch.exec("StartMusicOnHold" if on else "StopMusicOnHold")
    except AGIHangup:
        pass


async def moved_to(ch) -> str | None:
    """Where a REFER took the caller, read once the Dial returned. res_pjsip_refer makes it
    a blind transfer: the bridge leaves the caller's channel set to continue at
    TRANSFER_CONTEXT, extension = the Refer-To user, and hung up for this AGI session
    only (an async goto); CONTEXT and EXTEN say where (GET VARIABLE works on such a
    channel)."""
    try:
        if await ch.get_variable("CONTEXT") != ai_transfer.CONTEXT:
            return None
        return await ch.get_variable("EXTEN") or None
    except AGIHangup:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def _run(ch, call: dict, config, client: Ultravox) -> str | None:
    call_id = call["id"]
    await _hold(ch, True)      # no dead air while Ultravox is asked
    try:
        await asyncio.to_thread(check_tool_urls, call, config)
        uv_agent, templated = await asyncio.to_thread(_agent_for, client, call)
        if templated or config.ultravox_sip_mode == ultravox_sip.OUTGOING:
            return await _run_outgoing(ch, call, config, client, uv_agent)
        domain = (await asyncio.to_thread(_domain, client, config)
                  if config.ultravox_sip_mode == "allowlist" else None)
        dial = dial_target(config, uv_agent, domain)
    except (UltravoxError, BridgeError) as exc:
        await _hold(ch, False)
        await _failed(call_id, exc.code, getattr(exc, "message", str(exc)))
        return None
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result("active"))
    log.info("call %s: dialling Ultravox agent %s", call_id, uv_agent)

    since = _iso(time.time() - CLOCK_SKEW)
    stop = threading.Event()
    wait = float(config.ultravox_end_wait)
    claim = asyncio.ensure_future(asyncio.to_thread(
        _claim, client, uv_agent, since, time.monotonic() + config.transfer_timeout + wait,
        stop))
    caller_gone = False
    dial_status = None
    try:
        for name, value in ai_transfer.channel_variables(call):   # the agent's coldTransfer
            await ch.run(commands.set_variable(name, value))
        await _hold(ch, False)
        reply = await ch.exec("Dial", dial, str(int(config.transfer_timeout)),
                              dial_options(call))
        # Dial answers -1 when the calling channel hung up during it
        caller_gone = _code(reply) == -1 or getattr(ch.transport, "hung_up", False)
    except AGIHangup:            # the callee hung up: collect what Ultravox has all the same
        caller_gone = True
    try:                         # readable on a dead channel too
        dial_status = await ch.get_variable("DIALSTATUS")
    except AGIHangup:
        pass
    moved = await moved_to(ch)
    if dial_status and dial_status != "ANSWER":
        stop.set()               # no INVITE was admitted: no call to look for
    try:
        uv_call_id = await claim
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message)
        return moved

    if dial_status != "ANSWER" and (not caller_gone or dial_status):
        await _failed(call_id, f"dial-{(dial_status or 'unknown').lower()}",
                      "Ultravox's SIP side did not answer", uv_call_id)
        return moved
    if uv_call_id is None:
        await _failed(call_id, "ultravox-call-not-found",
                      "Ultravox listed no call for the agent after the INVITE")
        return moved
    try:
        state, messages = await asyncio.to_thread(_finish, client, uv_call_id, wait)
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message, uv_call_id)
        return moved
    reason = state.get("endReason") or ("hangup" if caller_gone else "agent_hangup")
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result(
        "ended", transcript=ultravox_mapping.transcript(messages),
        seconds=ultravox_mapping.call_seconds(state), end_reason=reason,
        ultravox_call_id=uv_call_id))
    if not state.get("ended"):
        log.warning("call %s: Ultravox had not ended call %s after %ss", call_id, uv_call_id,
                    config.ultravox_end_wait)
    return moved


def _agent_call_body(call: dict, config, token: str) -> dict:
    """POST /api/agents/{id}/calls: the call's context as template variables and metadata,
    and the SIP medium that makes Ultravox INVITE us at sip:<token>@<our host>."""
    if not config.ultravox_outgoing_host:
        raise BridgeError("outgoing-not-configured",
                          "the agent's prompt uses template variables, which only the "
                          "outgoing flow carries: set ultravox_outgoing_host")
    metadata = {str(k): str(v) for k, v in (call.get("metadata") or {}).items()}
    metadata["trunxCallId"] = call["id"]
    try:
        medium = ultravox_sip.outgoing_medium(
            token, config.ultravox_outgoing_host, from_user=call.get("from_number"),
            username=config.ultravox_outgoing_username,
            password=config.ultravox_outgoing_password)
    except ultravox_sip.SipSetupError as exc:
        raise BridgeError(exc.code, exc.message) from None
    return {"templateContext": ultravox_mapping.template_context(call),
            "metadata": metadata, "medium": medium}


async def _run_outgoing(ch, call: dict, config, client: Ultravox,
                        uv_agent: str) -> str | None:
    """The outgoing flow (docs/ai.md): create the agent call over HTTP with our SIP address
    as its medium, then the caller dials Local/<token>@trunx-ai-meet, which answers with
    hold music until Ultravox's INVITE to sip:<token>@<host> bridges itself there
    ([trunx-ultravox-out]). The Ultravox call id comes back from the request."""
    call_id = call["id"]
    token = ultravox_sip.new_token()
    try:
        body = _agent_call_body(call, config, token)
        created = await asyncio.to_thread(client.create_agent_call, uv_agent, body)
    except (UltravoxError, BridgeError) as exc:
        await _hold(ch, False)
        await _failed(call_id, exc.code, getattr(exc, "message", str(exc)))
        return None
    uv_call_id = created.get("callId")
    if not uv_call_id:
        await _hold(ch, False)
        await _failed(call_id, "ultravox-call-not-found", "Ultravox answered no callId")
        return None
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result(
        "active", ultravox_call_id=uv_call_id))
    log.info("call %s: Ultravox agent %s calls us back as %s", call_id, uv_agent, uv_call_id)
    caller_gone = False
    try:
        for name, value in ai_transfer.channel_variables(call):
            await ch.run(commands.set_variable(name, value))
        # how long [trunx-ai-meet] holds the caller for Ultravox's INVITE
        await ch.run(commands.set_variable("__TRUNX_UV_WAIT",
                                           str(int(config.transfer_timeout))))
        await _hold(ch, False)
        reply = await ch.exec("Dial", ultravox_sip.meet_target(token),
                              str(int(config.transfer_timeout)), dial_options(call))
        caller_gone = _code(reply) == -1 or getattr(ch.transport, "hung_up", False)
    except AGIHangup:
        caller_gone = True
    moved = await moved_to(ch)
    try:
        state, messages = await asyncio.to_thread(
            _finish, client, uv_call_id, float(config.ultravox_end_wait))
    except UltravoxError as exc:
        await _failed(call_id, exc.code, exc.message, uv_call_id)
        return moved
    if not state.get("joined"):
        await _failed(call_id, "ultravox-never-joined",
                      "Ultravox's INVITE never reached the waiting caller", uv_call_id)
        return moved
    reason = state.get("endReason") or ("hangup" if caller_gone else "agent_hangup")
    await asyncio.to_thread(_store, call_id, ultravox_mapping.ai_result(
        "ended", transcript=ultravox_mapping.transcript(messages),
        seconds=ultravox_mapping.call_seconds(state), end_reason=reason,
        ultravox_call_id=uv_call_id))
    return moved


def _code(reply) -> int:
    try:
        return int(reply.result)
    except (AttributeError, TypeError, ValueError):
        return 0
