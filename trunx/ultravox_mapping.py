"""trunx's fields as Ultravox's bodies, and Ultravox's results as trunx's: call templates
(CallTemplate, SelectedTool in Ultravox's API schema, https://docs.ultravox.ai/api-reference),
the name of the agent trunx manages for a plain call, durations ("300s"), transcripts from
call messages, and the `ai` result a trunx call keeps. Pure functions; the client is
trunx/ultravox.py."""
from __future__ import annotations

import re

# Ultravox agent names: letters, digits, _ and -, at most 64 (a display name is mapped)
_AGENT_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")

ROLE_LABELS = {"MESSAGE_ROLE_AGENT": "Agent", "MESSAGE_ROLE_USER": "User"}
END_REASONS = ("unjoined", "hangup", "agent_hangup", "timeout", "connection_error",
               "system_error")


# -- trunx fields -> Ultravox bodies ------------------------------------------------------

def agent_name(name: str) -> str:
    """A trunx agent name as Ultravox accepts it: [A-Za-z0-9_-]{1,64}."""
    out = _AGENT_NAME_BAD.sub("_", name.strip()).strip("_")[:64]
    return out or "agent"


def duration(seconds) -> str:
    """Seconds as a protobuf Duration string: 300 -> "300s", 1.5 -> "1.5s"."""
    value = float(seconds)
    return f"{int(value)}s" if value.is_integer() else f"{value:g}s"


def parse_duration(value) -> float | None:
    """ "300s" / "1.5s" / 300 / "300" -> seconds; None for anything else (a stored value
    that is not a duration is no reason for a call to fail: the default applies)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s?\s*", value)
        if m and float(m.group(1)) > 0:
            return float(m.group(1))
    return None


def selected_tools(tool_ids=(), knowledge_ids=(), inline=()) -> list[dict]:
    """Ultravox SelectedTool objects (exactly one of toolId, toolName, temporaryTool each):
    a UUID is a durable tool (`toolId`), a built-in's name goes by `toolName`
    (ultravox_tools.BUILT_IN), inline definitions are temporary tools; knowledge bases use
    the built-in queryCorpus tool, one per corpus (renamed when there are several, as tool
    names must be unique within a call)."""
    from trunx import ultravox_tools

    tools = [ultravox_tools.reference(t) for t in tool_ids]
    tools += [{"temporaryTool": t} for t in inline]
    many = len(knowledge_ids) > 1
    for i, corpus in enumerate(knowledge_ids, 1):
        tool = {"toolName": "queryCorpus",
                "parameterOverrides": {"corpus_id": corpus, "max_results": 5}}
        if many:
            tool["nameOverride"] = f"queryCorpus{i}"
        tools.append(tool)
    return tools


def first_speaker_settings(first_speaker: str = "agent", text: str | None = None) -> dict:
    if first_speaker == "user":
        return {"user": {}}
    return {"agent": {"text": text}} if text else {"agent": {}}


def _agent_tools(agent) -> list[dict]:
    """An agent's tools; its `transfers` as coldTransfer tools with their targets (a bare
    `coldTransfer` in tool_ids then gives way: tool names are unique within a call)."""
    from trunx import ultravox_transfer

    transfers = list(getattr(agent, "transfers", None) or [])
    tool_ids = [t for t in agent.tool_ids or [] if not (transfers and t == "coldTransfer")]
    return (selected_tools(tool_ids, agent.knowledge_ids or [])
            + ultravox_transfer.selected_tools(transfers))


def call_template(agent) -> dict:
    """An Agent row (or anything with its fields) as an Ultravox callTemplate."""
    template = {
        "systemPrompt": agent.prompt,
        "languageHint": agent.language or "en",
        "maxDuration": duration(parse_duration(agent.max_duration) or 300),
        "firstSpeakerSettings": first_speaker_settings("agent", agent.first_message),
        "selectedTools": _agent_tools(agent),
    }
    if agent.voice:
        template["voice"] = agent.voice
    return template


def ai_template(ai: dict, max_duration=None) -> dict:
    """POST /api/voice's AI fields (seed 002) as the callTemplate of the agent trunx manages
    for them: Ultravox creates SIP calls from an agent's template only."""
    template: dict = {"systemPrompt": ai["systemPrompt"]}
    for name in ("model", "voice", "temperature"):
        if ai.get(name) is not None:
            template[name] = ai[name]
    seconds = parse_duration(ai.get("maxDuration")) or parse_duration(max_duration)
    if seconds:
        template["maxDuration"] = duration(seconds)
    template["firstSpeakerSettings"] = first_speaker_settings(
        ai.get("firstSpeaker") or "agent", ai.get("firstMessage"))
    if ai.get("language"):
        template["languageHint"] = ai["language"]
    tools = selected_tools(ai.get("toolIds") or [], inline=ai.get("tools") or [])
    if tools:
        template["selectedTools"] = tools
    return template


def template_context(call: dict) -> dict:
    """The templateContext of a call (ultravox_tools.TEMPLATE_VARIABLES, every one a
    string, "" when the call has none): an IVR transfer's DID, caller, IVR ("<id> v<n>"),
    nodes entered ("menu>sales") and keys pressed in order ("1,2"), from the metadata the
    engine gives it; `from` and `to` of every call."""
    meta = call.get("metadata") or {}
    ivr = meta.get("trunxSource") == "ivr"
    return {"did": str(meta.get("trunxDid") or "") if ivr else "",
            "caller": str(meta.get("trunxCaller") or "") if ivr else "",
            "keys": str(meta.get("trunxDigits") or "") if ivr else "",
            "nodes": str(meta.get("trunxPath") or "") if ivr else "",
            "ivr": str(meta.get("trunxIvr") or "") if ivr else "",
            "from": str(call.get("from_number") or ""), "to": str(call.get("to_number") or "")}


def uses_variables(template: dict) -> bool:
    """Whether a call template's prompt or first message uses `{{...}}` (only a call
    created over HTTP can fill them)."""
    from trunx import ultravox_tools

    first = (template.get("firstSpeakerSettings") or {}).get("agent") or {}
    return bool(ultravox_tools.template_variables(template.get("systemPrompt"))
                or ultravox_tools.template_variables(first.get("text")))


def managed_agent_name(template: dict) -> str:
    """The name of the Ultravox agent trunx keeps for one call template: the same
    configuration always finds the same agent; a changed one makes another."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return f"trunx-call-{digest[:24]}"


# -- Ultravox results -> trunx ------------------------------------------------------------

def transcript(messages: list[dict]) -> str:
    """The spoken conversation, one line per turn: "Agent: ...\\nUser: ..."."""
    lines = []
    for m in messages:
        label = ROLE_LABELS.get(m.get("role"))
        text = (m.get("text") or "").strip()
        if label and text:
            lines.append(f"{label}: {text}")
    return "\n".join(lines)


def call_seconds(call: dict) -> float | None:
    """How long the AI was on the call: joined -> ended, else billedDuration."""
    from datetime import datetime

    def ts(value):
        if not isinstance(value, str):
            return None
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None

    joined, ended = ts(call.get("joined")), ts(call.get("ended"))
    if joined and ended:
        return max(0.0, round((ended - joined).total_seconds(), 3))
    return parse_duration(call.get("billedDuration"))


def ai_result(status: str, *, transcript: str | None = None, seconds: float | None = None,
              end_reason: str | None = None, ultravox_call_id: str | None = None) -> dict:
    """What Call.ai_result holds; trunx.calls.call_json shows its first four keys as the
    seed's `ai` object of GET /api/voice/{id}."""
    return {"status": status, "transcript": transcript,
            "duration": None if seconds is None else round(seconds),
            "endReason": end_reason, "ultravoxCallId": ultravox_call_id}
