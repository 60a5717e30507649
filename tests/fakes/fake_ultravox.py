"""A local HTTP server speaking the part of the Ultravox API that trunx uses.

    POST   /api/agents                {name, callTemplate}  -> 201 Agent
    GET    /api/agents                -> {results, next, previous, total}
    GET    /api/agents/{id}           -> Agent          (404 {"detail": "Not found."})
    PATCH  /api/agents/{id}           {name?, callTemplate?} -> Agent
    DELETE /api/agents/{id}           -> 204
    POST   /api/agents/{id}/calls     {medium, maxDuration, metadata, ...} -> 201 Call
    POST   /api/calls                 {systemPrompt, ..., medium} -> 201 Call
    GET    /api/calls/{id}            -> Call (ended/endReason once the test's script says)
    GET    /api/calls/{id}/messages   ?pageSize&cursor -> {results, next, previous, total}
    a missing or wrong X-API-Key      -> 401 {"detail": "Invalid API key."}
    an agent name outside [A-Za-z0-9_-]{1,64} -> 400 {"name": ["..."]}
    an unknown voice                  -> 400 {"detail": "Unknown voice: ..."}

For a call with the SIP medium `incoming`, `joinUrl` is `sip_target` (a string, or a
function of the call): tests point it at a local Asterisk standing in for Ultravox's SIP side.
What a call "said" and how it ended come from `script` (copied into each new call), or from
`end_call()`; a script's `ended_after_polls` keeps the call live for that many GETs.

Every request is recorded in `.requests`; `fail(method, prefix, status, body)` makes the next
matching request fail; `delay` makes every response slow (for client timeouts).
"""
from __future__ import annotations

import copy
import datetime as dt
import re
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import HTTPFake, read_json, send_json

VOICES = ["Mark", "Jessica", "Emily-English", "Tanya-English", "Mark-Spanish"]
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

DEFAULT_SCRIPT = {
    "messages": [
        {"role": "MESSAGE_ROLE_AGENT", "text": "Hi, this is Sarah from Downtown Dental.",
         "medium": "MESSAGE_MEDIUM_VOICE"},
        {"role": "MESSAGE_ROLE_USER", "text": "Yes, this is John.",
         "medium": "MESSAGE_MEDIUM_VOICE"},
    ],
    "endReason": "hangup",
    "seconds": 12.0,            # joined -> ended
    "ended_after_polls": 0,     # GET /api/calls/{id} answers live this many times first
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class FakeUltravox(HTTPFake):
    methods = ("GET", "POST", "PATCH", "DELETE")

    def __init__(self, api_key: str = "uv-test-key", voices: list[str] | None = None):
        super().__init__()
        self.api_key = api_key
        self.voices = list(VOICES if voices is None else voices)
        self.agents: dict[str, dict] = {}
        self.calls: dict[str, dict] = {}
        self.scripts: dict[str, dict] = {}     # call id -> its script
        self.polls: dict[str, int] = {}
        self.script = copy.deepcopy(DEFAULT_SCRIPT)
        self.sip_target = "sip:{callId}@sip.ultravox.invalid"   # {callId} is replaced
        self._failures: list[tuple[str, str, int, object]] = []

    def last(self, method: str, prefix: str = "/") -> dict:
        with self._lock:
            return [r for r in self.requests
                    if r["method"] == method and r["path"].startswith(prefix)][-1]

    def fail(self, method: str, prefix: str, status: int, body=None, times: int = 1) -> None:
        """The next `times` requests matching method and path prefix answer `status`."""
        with self._lock:
            self._failures.extend([(method, prefix, status, body)] * times)

    def end_call(self, call_id: str, end_reason: str = "hangup",
                 messages: list[dict] | None = None, seconds: float = 12.0) -> None:
        with self._lock:
            self._end(call_id, {"endReason": end_reason, "seconds": seconds,
                                "messages": messages if messages is not None
                                else self.scripts[call_id]["messages"]})

    # --- request handling ---------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        body = read_json(h)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        record = {"method": method, "path": url.path, "query": query,
                  "headers": dict(h.headers), "json": body}
        with self._lock:
            self.requests.append(record)
            failure = next((f for f in self._failures
                            if f[0] == method and url.path.startswith(f[1])), None)
            if failure:
                self._failures.remove(failure)
        if self.delay:
            time.sleep(self.delay)
        if h.headers.get("X-API-Key") != self.api_key:
            return send_json(h, 401, {"detail": "Invalid API key."})
        if failure:
            return send_json(h, failure[2], failure[3] if failure[3] is not None
                              else {"detail": "Injected failure."})
        with self._lock:
            status, payload = self._route(method, url.path, query, body)
        return send_json(h, status, payload)

    def _route(self, method, path, query, body):
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "agents"]:
            return self._agents(method, parts[2:], query, body)
        if parts[:2] == ["api", "calls"]:
            return self._calls(method, parts[2:], query, body)
        return 404, {"detail": "Not found."}

    # agents
    def _agents(self, method, rest, query, body):
        if not rest:
            if method == "POST":
                return self._create_agent(body)
            if method == "GET":
                return 200, self._page(list(self.agents.values()), query, "/api/agents")
            return 405, {"detail": f'Method "{method}" not allowed.'}
        agent = self.agents.get(rest[0])
        if agent is None:
            return 404, {"detail": "Not found."}
        if len(rest) == 2 and rest[1] == "calls" and method == "POST":
            template = agent["callTemplate"] or {}
            call = self._new_call({**template, **(body or {})}, agent_id=agent["agentId"])
            agent["statistics"]["calls"] += 1
            return 201, call
        if len(rest) != 1:
            return 404, {"detail": "Not found."}
        if method == "GET":
            return 200, agent
        if method == "DELETE":
            del self.agents[rest[0]]
            return 204, None
        if method == "PATCH":
            problem = self._check_agent(body, partial=True)
            if problem:
                return 400, problem
            if "name" in body:
                agent["name"] = body["name"]
            if "callTemplate" in body:
                agent["callTemplate"] = {**body["callTemplate"], "updated": _now()}
                agent["publishedRevisionId"] = str(uuid.uuid4())
            return 200, agent
        return 405, {"detail": f'Method "{method}" not allowed.'}

    def _check_agent(self, body, *, partial: bool):
        if not isinstance(body, dict):
            return {"detail": "JSON parse error."}
        if "name" in body or not partial:
            if not isinstance(body.get("name"), str) or not _AGENT_NAME.match(body["name"]):
                return {"name": ["Ensure this field matches ^[a-zA-Z0-9_-]{1,64}$."]}
        template = body.get("callTemplate")
        if template is not None:
            if not isinstance(template, dict):
                return {"callTemplate": ["Expected an object."]}
            voice = template.get("voice")
            if voice is not None and voice not in self.voices:
                return {"detail": f"Unknown voice: {voice}"}
        return None

    def _create_agent(self, body):
        problem = self._check_agent(body, partial=False)
        if problem:
            return 400, problem
        agent = {"agentId": str(uuid.uuid4()), "publishedRevisionId": str(uuid.uuid4()),
                 "name": body["name"], "created": _now(),
                 "callTemplate": {**(body.get("callTemplate") or {}), "created": _now()},
                 "statistics": {"calls": 0}}
        self.agents[agent["agentId"]] = agent
        return 201, agent

    # calls
    def _calls(self, method, rest, query, body):
        if not rest and method == "POST":
            if not isinstance(body, dict):
                return 400, {"detail": "JSON parse error."}
            voice = body.get("voice")
            if voice is not None and voice not in self.voices:
                return 400, {"detail": f"Unknown voice: {voice}"}
            return 201, self._new_call(body)
        if not rest:
            return 405, {"detail": f'Method "{method}" not allowed.'}
        call = self.calls.get(rest[0])
        if call is None:
            return 404, {"detail": "Not found."}
        if len(rest) == 1 and method == "GET":
            self.polls[rest[0]] += 1
            script = self.scripts[rest[0]]
            if call["ended"] is None and self.polls[rest[0]] > script["ended_after_polls"]:
                self._end(rest[0], script)
            return 200, call
        if len(rest) == 2 and rest[1] == "messages" and method == "GET":
            messages = self.scripts[rest[0]]["messages"] if call["ended"] else []
            return 200, self._page(messages, query, f"/api/calls/{rest[0]}/messages")
        return 404, {"detail": "Not found."}

    def _new_call(self, fields: dict, agent_id: str | None = None) -> dict:
        call_id = str(uuid.uuid4())
        medium = fields.get("medium") or {"webRtc": {}}
        call = {
            "callId": call_id, "created": _now(), "joined": None, "ended": None,
            "endReason": None, "agentId": agent_id,
            "systemPrompt": fields.get("systemPrompt"), "voice": fields.get("voice"),
            "model": fields.get("model") or "fixie-ai/ultravox",
            "temperature": fields.get("temperature", 0),
            "maxDuration": fields.get("maxDuration") or "3600s",
            "languageHint": fields.get("languageHint"),
            "firstSpeakerSettings": fields.get("firstSpeakerSettings") or {"agent": {}},
            "selectedTools": fields.get("selectedTools") or [],
            "metadata": fields.get("metadata") or {}, "medium": medium,
            "joinUrl": None, "billedDuration": None,
        }
        if "sip" in medium and "incoming" in medium["sip"]:
            target = self.sip_target
            call["joinUrl"] = (target(call) if callable(target)
                               else target.replace("{callId}", call_id))
        elif "webRtc" in medium:
            call["joinUrl"] = f"wss://voice.ultravox.invalid/calls/{call_id}"
        self.calls[call_id] = call
        self.scripts[call_id] = copy.deepcopy(self.script)
        self.polls[call_id] = 0
        return call

    def _end(self, call_id: str, script: dict) -> None:
        call = self.calls[call_id]
        self.scripts[call_id].update(copy.deepcopy(script))
        ended = dt.datetime.now(dt.UTC)
        joined = ended - dt.timedelta(seconds=script.get("seconds", 12.0))
        call["joined"] = joined.isoformat().replace("+00:00", "Z")
        call["ended"] = ended.isoformat().replace("+00:00", "Z")
        call["endReason"] = script.get("endReason", "hangup")
        call["billedDuration"] = f"{script.get('seconds', 12.0):g}s"

    def _page(self, items: list, query: dict, path: str) -> dict:
        size = max(1, int(query.get("pageSize") or 100))
        start = int(query.get("cursor") or 0)
        chunk = items[start:start + size]
        nxt = f"{self.base_url}{path}?cursor={start + size}&pageSize={size}" \
            if start + size < len(items) else None
        prev = f"{self.base_url}{path}?cursor={max(0, start - size)}&pageSize={size}" \
            if start else None
        return {"results": chunk, "next": nxt, "previous": prev, "total": len(items)}
