"""Ultravox (AI voice agents) over its HTTP API, and the mapping from trunx's fields to it.

The calls used, as Ultravox documents them (https://docs.ultravox.ai/api-reference):
    header X-API-Key on every request
    GET    /api/calls?agentIds&fromDate -> {results: [Call], next}  (calls_list: the calls
                                        an agent's SIP INVITEs created since a moment)
    GET    /api/calls/{id}             -> Call {callId, created, joined, ended, endReason,
                                        agentId, metadata, ...}
    GET    /api/calls/{id}/messages    -> {results: [{role, text, medium, ...}], next, total}
                                        (cursor pagination: `next` is the next page's URL)
    POST   /api/agents                 {name, callTemplate: {...}} -> 201 Agent
                                        {agentId, name, created, callTemplate, statistics}
    GET    /api/agents/{id}, PATCH (same body, partial), DELETE -> 204
    GET    /api/agents?search=name     -> {results: [Agent], next}
    GET    /api/sip, PATCH /api/sip    {allowedCidrRanges, allowAllAgents} -> SipConfig
                                        {domain, allowedCidrRanges, allowAllAgents, ...}
    POST   /api/sip/registrations      {username, password, proxy} -> 201 SipRegistration
    GET    /api/sip/registrations      -> {results: [SipRegistration], next}
    errors: non-2xx, usually JSON {"detail": "..."} or {field: ["..."]}

Calls are not created over HTTP: trunx's Asterisk sends an INVITE to the agent's SIP user
and Ultravox creates the call from the agent's call template (trunx/ultravox_sip.py says
how; agi_server/ai/bridge.py does it). A plain `systemPrompt` call goes through an agent
trunx manages for that configuration (`managed_agent_name`, `ai_template`).

Errors are data, one family under trunx's error tree (trunx/errors.py); `remote_status`
is what Ultravox said, if it said anything (also in details, as remoteStatus):

    UltravoxError
    ├── UltravoxNotConfigured  NotConfigured    ultravox-not-configured
    ├── UltravoxUnavailable    Unavailable      ultravox-unreachable, ultravox-rate-limited
    ├── UltravoxTimeout        UpstreamTimeout  ultravox-timeout
    ├── UltravoxRejected       InvalidInput     ultravox-rejected (Ultravox refused our input)
    └── UltravoxFailed         UpstreamError    ultravox-unauthorized, ultravox-not-found,
                                                ultravox-bad-response, ultravox-error

The API key never appears in an error (it is only ever sent as a header).
"""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

import requests

from trunx.errors import (
    InvalidInput,
    NotConfigured,
    TrunxError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)

SETTING = "ULTRAVOX_API_KEY"
# Ultravox agent names: letters, digits, _ and -, at most 64 (a display name is mapped)
_AGENT_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_MESSAGE_MAX = 500

ROLE_LABELS = {"MESSAGE_ROLE_AGENT": "Agent", "MESSAGE_ROLE_USER": "User"}
END_REASONS = ("unjoined", "hangup", "agent_hangup", "timeout", "connection_error",
               "system_error")


class UltravoxError(TrunxError):
    def __init__(self, code: str, message: str, *, remote_status: int | None = None,
                 details: dict | None = None):
        details = dict(details or {})
        if remote_status is not None:
            details["remoteStatus"] = remote_status
        super().__init__(code, message, details)
        self.remote_status = remote_status

    @property
    def not_found(self) -> bool:
        return self.remote_status == 404

    def summary(self) -> dict:
        """What GET /api/voice/agents/{id} says in `ultravoxError`."""
        out = {"code": self.code, "message": self.message}
        if self.remote_status is not None:
            out["remoteStatus"] = self.remote_status
        return out


class UltravoxNotConfigured(UltravoxError, NotConfigured):
    pass


class UltravoxUnavailable(UltravoxError, Unavailable):
    pass


class UltravoxTimeout(UltravoxError, UpstreamTimeout):
    pass


class UltravoxRejected(UltravoxError, InvalidInput):
    pass


class UltravoxFailed(UltravoxError, UpstreamError):
    pass


def not_configured() -> UltravoxError:
    return UltravoxNotConfigured("ultravox-not-configured",
                                 f"AI agents need Ultravox: set {SETTING} (the API key from the "
                                 "Ultravox console) and restart", details={"setting": SETTING})


class Ultravox:
    provider = "ultravox"

    def __init__(self, api_key: str, base_url: str = "https://api.ultravox.ai", *,
                 timeout: tuple[float, float] = (5.0, 20.0)):
        if not api_key:
            raise not_configured()
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout            # (connect, read) seconds
        self._session = requests.Session()

    @classmethod
    def from_config(cls, config) -> Ultravox:
        """The client for `config`; UltravoxError ultravox-not-configured without a key."""
        timeout = float(getattr(config, "ultravox_timeout", 20.0))
        return cls(config.ultravox_api_key, config.ultravox_base_url,
                   timeout=(min(5.0, timeout), timeout))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Ultravox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:     # never the key
        return f"Ultravox({self.base_url!r})"

    # -- transport ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json=None, params=None):
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        try:
            resp = self._session.request(method, url, json=json, params=params,
                                         headers={"X-API-Key": self._key,
                                                  "Accept": "application/json"},
                                         timeout=self.timeout)
        except requests.Timeout:
            raise UltravoxTimeout("ultravox-timeout",
                                  f"Ultravox did not answer within {self.timeout[1]:g} s",
                                  details={"timeout": self.timeout[1]}) from None
        except requests.RequestException as exc:
            raise UltravoxUnavailable("ultravox-unreachable",
                                      f"Ultravox could not be reached ({type(exc).__name__})",
                                      details={"base_url": self.base_url}) from None
        if resp.status_code == 204 or (200 <= resp.status_code < 300 and not resp.content):
            return None
        if not 200 <= resp.status_code < 300:
            raise self._error(resp)
        try:
            return resp.json()
        except ValueError:
            raise UltravoxFailed("ultravox-bad-response",
                                 "Ultravox sent a response that is not JSON",
                                 remote_status=resp.status_code) from None

    def _error(self, resp: requests.Response) -> UltravoxError:
        status = resp.status_code
        said = self._redact(_remote_message(resp))
        if status in (401, 403):
            return UltravoxFailed("ultravox-unauthorized",
                                  f"Ultravox refused the API key ({SETTING}): {said}",
                                  remote_status=status, details={"setting": SETTING})
        if status == 404:
            return UltravoxFailed("ultravox-not-found", f"Ultravox: {said}",
                                  remote_status=status)
        if status == 429:
            return UltravoxUnavailable("ultravox-rate-limited",
                                       f"Ultravox is rate limiting this account: {said}",
                                       remote_status=status,
                                       details={"retry_after": resp.headers.get("Retry-After")})
        if 400 <= status < 500:
            return UltravoxRejected("ultravox-rejected",
                                    f"Ultravox rejected the request: {said}",
                                    remote_status=status)
        return UltravoxFailed("ultravox-error", f"Ultravox failed ({status}): {said}",
                              remote_status=status)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # -- calls --------------------------------------------------------------------------
    def create_call(self, body: dict) -> dict:
        return self._request("POST", "/api/calls", json=body)

    def get_call(self, call_id: str) -> dict:
        return self._request("GET", f"/api/calls/{_seg(call_id)}")

    def messages(self, call_id: str, *, page_size: int = 200, max_pages: int = 50) -> list:
        """Every message of the call, following the `next` cursor links."""
        out: list = []
        page = self._request("GET", f"/api/calls/{_seg(call_id)}/messages",
                             params={"pageSize": page_size})
        for _ in range(max_pages):
            out.extend((page or {}).get("results") or [])
            nxt = (page or {}).get("next")
            if not nxt or not self._same_origin(nxt):
                break
            page = self._request("GET", nxt)
        return out

    def _same_origin(self, url: str) -> bool:
        # a `next` link is followed with our key on it only if it points back at Ultravox
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def list_calls(self, *, agent_id: str, from_date: str, page_size: int = 50) -> list:
        """The calls of one agent created at or after `from_date` (ISO 8601), first page."""
        page = self._request("GET", "/api/calls",
                             params={"agentIds": agent_id, "fromDate": from_date,
                                     "pageSize": page_size})
        return list((page or {}).get("results") or [])

    # -- SIP ------------------------------------------------------------------------------
    def get_sip(self) -> dict:
        return self._request("GET", "/api/sip")

    def update_sip(self, body: dict) -> dict:
        return self._request("PATCH", "/api/sip", json=body)

    def create_sip_registration(self, body: dict) -> dict:
        return self._request("POST", "/api/sip/registrations", json=body)

    def sip_registrations(self) -> list:
        page = self._request("GET", "/api/sip/registrations")
        return list((page or {}).get("results") or [])

    # -- agents -------------------------------------------------------------------------
    def find_agent(self, name: str) -> dict | None:
        """The agent named exactly `name`, if the account has one (search, then compare)."""
        page = self._request("GET", "/api/agents", params={"search": name, "pageSize": 100})
        return next((a for a in (page or {}).get("results") or [] if a.get("name") == name),
                    None)

    def create_agent(self, name: str, call_template: dict) -> dict:
        return self._request("POST", "/api/agents",
                             json={"name": name, "callTemplate": call_template})

    def get_agent(self, agent_id: str) -> dict:
        return self._request("GET", f"/api/agents/{_seg(agent_id)}")

    def update_agent(self, agent_id: str, *, name: str | None = None,
                     call_template: dict | None = None) -> dict:
        body: dict = {}
        if name is not None:
            body["name"] = name
        if call_template is not None:
            body["callTemplate"] = call_template
        return self._request("PATCH", f"/api/agents/{_seg(agent_id)}", json=body)

    def delete_agent(self, agent_id: str) -> None:
        self._request("DELETE", f"/api/agents/{_seg(agent_id)}")


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _remote_message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        text = resp.text.strip()
        return (text[:_MESSAGE_MAX] or resp.reason or "no details")
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str):
            text = data["detail"]
        elif isinstance(data.get("message"), str):
            text = data["message"]
        else:   # field errors: {"name": ["..."], "callTemplate": {"voice": ["..."]}}
            text = "; ".join(f"{k}: {_flat(v)}" for k, v in data.items())
    else:
        text = _flat(data)
    return text[:_MESSAGE_MAX] or "no details"


def _flat(value) -> str:
    if isinstance(value, list):
        return " ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    return str(value)


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


def call_template(agent) -> dict:
    """An Agent row (or anything with its fields) as an Ultravox callTemplate."""
    template = {
        "systemPrompt": agent.prompt,
        "languageHint": agent.language or "en",
        "maxDuration": duration(parse_duration(agent.max_duration) or 300),
        "firstSpeakerSettings": first_speaker_settings("agent", agent.first_message),
        "selectedTools": selected_tools(agent.tool_ids or [], agent.knowledge_ids or []),
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
