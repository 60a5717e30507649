"""Agents API (seed 003): reusable AI voice agents, mirrored to Ultravox agents, and calls
placed through them.

SQLite holds the agent; Ultravox holds its twin (`ultravoxId`). Writes go to Ultravox first
and to SQLite only once Ultravox said yes, so a remote failure leaves nothing half-written:
a failed create stores no row, a failed update keeps the old one, and a delete removes the
row only once Ultravox has removed its agent (or says it has none). Reads answer from SQLite;
GET one also asks Ultravox and says what it found in `ultravoxStatus`:

    active          Ultravox has the agent
    missing         Ultravox says it has no such agent (deleted in its console?); the next
                    PATCH recreates it
    unreachable     Ultravox could not be asked (`ultravoxError` says why)
    not-configured  no ULTRAVOX_API_KEY here
"""
from __future__ import annotations

import re

from flask import Blueprint

from admin_api import context as ctx
from admin_api.agents import did_selection
from admin_api.idempotency import idempotent
from admin_api.pagination import paginate
from admin_api.voice import amd as voice_amd
from admin_api.voice import service as voice_service
from trunx import dnc, phone, ultravox, ultravox_mapping, ultravox_tools, ultravox_transfer
from trunx.errors import Forbidden, NotFound, invalid
from trunx.models import Agent, iso, new_uuid, utcnow

bp = Blueprint("agents", __name__, url_prefix="/api/voice/agents")

FIELDS = {"name", "prompt", "voice", "first_message", "language", "tool_ids", "knowledge_ids",
          "max_duration", "voicemail_drop", "transfers"}
DEFAULTS = {"language": "en", "max_duration": 300}
MAX_DURATION = 24 * 3600
LIST_DEFAULT, LIST_MAX = 50, 500
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")   # BCP 47, as Ultravox hints
_REF_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


# -- shapes ---------------------------------------------------------------------------------

def _number(value):
    return int(value) if float(value).is_integer() else value


def summary(agent: Agent) -> dict:
    return {"id": agent.id, "name": agent.name, "ultravoxId": agent.ultravox_id,
            "createdAt": iso(agent.created_at)}


def as_json(agent: Agent) -> dict:
    return {"id": agent.id, "name": agent.name, "ultravoxId": agent.ultravox_id,
            "prompt": agent.prompt, "voice": agent.voice, "first_message": agent.first_message,
            "language": agent.language, "max_duration": _number(agent.max_duration),
            "tool_ids": list(agent.tool_ids or []),
            "knowledge_ids": list(agent.knowledge_ids or []),
            "transfers": list(agent.transfers or []),
            "voicemail_drop": agent.voicemail_drop,
            "createdAt": iso(agent.created_at), "updatedAt": iso(agent.updated_at)}


def get_owned(agent_id: str) -> Agent:
    agent = Agent.get_or_none(Agent.id == agent_id, Agent.account == ctx.account_id())
    if agent is None:
        raise NotFound("agent-not-found", f"no agent {agent_id} in this account",
                       {"id": agent_id})
    return agent


# -- validation -----------------------------------------------------------------------------

def _text(data: dict, name: str, max_len: int, *, nullable: bool) -> str | None:
    value = data[name]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "invalid-type" if value is not None else "required",
                      f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise invalid(name, "too-long", f"{name} is longer than {max_len} characters")
    return value


def _ids(data: dict, name: str) -> list[str]:
    value = data[name]
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 50:
        raise invalid(name, "invalid-type", f"{name} must be an array of at most 50 ids")
    for i, item in enumerate(value):
        if name == "tool_ids":   # Ultravox takes a tool's UUID, or a built-in's name
            ultravox_tools.check_tool_id(f"{name}[{i}]", item)
        elif not isinstance(item, str) or not _REF_ID.fullmatch(item):
            raise invalid(f"{name}[{i}]", "invalid-id",
                          f"{name}[{i}] must be an id of 1-128 letters, digits, _ . : -")
    if len(set(value)) != len(value):
        raise invalid(name, "duplicate", f"{name} lists an id twice")
    return list(value)


def _check(data: dict, *, partial: bool) -> dict:
    """The request's agent fields, checked; for a create, defaults fill the rest."""
    out: dict = {}
    for name in ("name", "prompt"):
        if name in data or not partial:
            if name not in data:
                raise invalid(name, "required", f"{name} is required")
            out[name] = _text(data, name, 200 if name == "name" else 20000, nullable=False)
    if "voice" in data:
        out["voice"] = _text(data, "voice", 200, nullable=True)
    if "first_message" in data:
        out["first_message"] = _text(data, "first_message", 2000, nullable=True)
    # {{...}} is an Ultravox template variable: only those trunx fills from the call
    # (ultravox_tools.TEMPLATE_VARIABLES; the outgoing flow carries them, docs/ai.md)
    for name in ("prompt", "first_message"):
        if out.get(name):
            ultravox_tools.check_template(name, out[name])
    if "language" in data:
        lang = data["language"]
        if lang is not None and (not isinstance(lang, str) or not _LANGUAGE.fullmatch(lang)
                                 or len(lang) > 16):
            raise invalid("language", "invalid-language",
                          'language must be a BCP 47 language code like "en" or "es-MX"')
        out["language"] = lang or DEFAULTS["language"]
    if "max_duration" in data:
        value = data["max_duration"]
        if value is None:
            value = DEFAULTS["max_duration"]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not 1 <= value <= MAX_DURATION):
            raise invalid("max_duration", "out-of-range",
                          f"max_duration must be a number of seconds from 1 to {MAX_DURATION}")
        out["max_duration"] = value
    for name in ("tool_ids", "knowledge_ids"):
        if name in data:
            out[name] = _ids(data, name)
    if "transfers" in data:   # the coldTransfer targets (trunx/ultravox_transfer.py)
        out["transfers"] = ultravox_transfer.check("transfers", data["transfers"],
                                                   ctx.account_id())
    if data.get("voicemail_drop") is not None:
        out["voicemail_drop"] = voice_amd.check_drop(data["voicemail_drop"], "voicemail_drop")
    elif "voicemail_drop" in data:
        out["voicemail_drop"] = None
    if not partial:
        out = {"voice": None, "first_message": None, "tool_ids": [], "knowledge_ids": [],
               "voicemail_drop": None, "transfers": [],
               **DEFAULTS, **out}
    return out


# -- Ultravox -------------------------------------------------------------------------------

def _client(*, quick: bool = False) -> ultravox.Ultravox:
    client = ultravox.Ultravox.from_config(ctx.config())
    if quick:   # a status check must not hold a read hostage to a slow provider
        client.timeout = (min(2.0, client.timeout[0]), min(3.0, client.timeout[1]))
    return client


def _remote_name(agent_id: str, name: str) -> str:
    # unique per agent, and traceable from the Ultravox console back to trunx
    return f"{ultravox_mapping.agent_name(name)[:55]}-{agent_id[:8]}"


# -- routes ---------------------------------------------------------------------------------

@bp.post("")
def create():
    fields = _check(ctx.json_body(FIELDS), partial=False)
    agent = Agent(id=new_uuid(), account=ctx.account_id(), **fields)
    with _client() as client:
        remote = client.create_agent(_remote_name(agent.id, agent.name),
                                     ultravox_mapping.call_template(agent))
        agent.ultravox_id = remote["agentId"]
        try:
            with ctx.store().db.atomic():
                agent.save(force_insert=True)
        except Exception:
            try:   # don't leave an Ultravox agent that trunx has no record of
                client.delete_agent(agent.ultravox_id)
            except ultravox.UltravoxError:
                pass
            raise
    return {"id": agent.id, "name": agent.name, "ultravoxId": agent.ultravox_id}, 201


@bp.get("")
def list_agents():
    page = paginate(Agent.select().where(Agent.account == ctx.account_id()), "agents",
                    Agent.created_at, Agent.id, default_limit=LIST_DEFAULT,
                    newest_first=True, maximum=LIST_MAX)
    items = [summary(a) for a in page.rows]
    return {"agents": items, "count": len(items), **page.fields()}


@bp.get("/<agent_id>")
def get(agent_id: str):
    agent = get_owned(agent_id)
    out = as_json(agent)
    if not ctx.config().ultravox_api_key:
        out["ultravoxStatus"] = "not-configured"
        return out
    with _client(quick=True) as client:
        try:
            client.get_agent(agent.ultravox_id)
            out["ultravoxStatus"] = "active"
        except ultravox.UltravoxError as exc:
            out["ultravoxStatus"] = "missing" if exc.not_found else "unreachable"
            if not exc.not_found:
                out["ultravoxError"] = exc.summary()
    return out


@bp.patch("/<agent_id>")
def update(agent_id: str):
    agent = get_owned(agent_id)
    changes = _check(ctx.json_body(FIELDS), partial=True)
    for name, value in changes.items():
        setattr(agent, name, value)
    with _client() as client:
        name, template = _remote_name(agent.id, agent.name), ultravox_mapping.call_template(agent)
        try:
            client.update_agent(agent.ultravox_id, name=name, call_template=template)
        except ultravox.UltravoxError as exc:
            if not exc.not_found:
                raise
            # its Ultravox twin is gone: make a new one rather than leave the agent unusable
            agent.ultravox_id = client.create_agent(name, template)["agentId"]
    agent.updated_at = utcnow()
    agent.save()
    return {**as_json(agent), "ultravoxStatus": "active"}


@bp.delete("/<agent_id>")
def delete(agent_id: str):
    agent = get_owned(agent_id)
    if agent.ultravox_id:
        with _client() as client:
            try:
                client.delete_agent(agent.ultravox_id)
            except ultravox.UltravoxError as exc:
                if not exc.not_found:   # gone already is what we wanted
                    raise
    agent.delete_instance()
    return {"deleted": True, "id": agent_id}


# -- calls through an agent -----------------------------------------------------------------

def agent_ai(agent: Agent) -> dict:
    """The call's AI config, as admin_api.voice.service stores it (and the engine's AI
    bridge reads)."""
    ai = {"systemPrompt": agent.prompt, "firstSpeaker": "agent",
          "ultravoxAgentId": agent.ultravox_id, "agentId": agent.id,
          "language": agent.language}
    if agent.voice:
        ai["voice"] = agent.voice
    if agent.first_message:
        ai["firstMessage"] = agent.first_message
    return ai


def _e164(data: dict, field: str, *, required: bool) -> str | None:
    value = data.get(field)
    if value is None and not required:
        return None
    if not phone.is_e164(value):
        raise invalid(field, "required" if value is None else "invalid-number",
                      f"{field} must be an E.164 number like +14155551234")
    return value


@bp.post("/<agent_id>/call")
@idempotent
def call(agent_id: str):
    agent = get_owned(agent_id)
    data = ctx.json_body({"to", "from", *voice_amd.FIELDS})
    to = _e164(data, "to", required=True)
    from_number = _e164(data, "from", required=False)
    config, store, account = ctx.config(), ctx.store(), ctx.account_id()
    if not config.ultravox_api_key:
        raise ultravox.not_configured()
    if dnc.is_suppressed(account, to, store.redis):
        raise Forbidden("number-suppressed", f"{to} is on this account's do-not-call list",
                        {"field": "to", "number": to})
    chosen = None
    if from_number is None:
        chosen = did_selection.select_did(account, to)   # NoDidAvailable: a 422 on "from"
        from_number = chosen.number
    placed = voice_service.place_call(store, account, from_number, to, ai=agent_ai(agent),
                              agent_id=agent.id, max_duration=agent.max_duration,
                              detection={k: data[k] for k in voice_amd.FIELDS if k in data},
                              agent_drop=agent.voicemail_drop, config=config)
    out = {"id": placed.id, "callId": placed.call_sid, "status": placed.status,
           "agentId": agent.id, "from": from_number, "to": to}
    if chosen is None:
        out["fromReason"] = "requested"
    else:
        out["fromReason"] = chosen.reason
        out["fromHealth"] = chosen.health.as_dict()
    return out, 201
