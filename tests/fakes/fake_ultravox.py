"""A local HTTP server speaking the part of the Ultravox API that trunx uses, and the SIP
side of Ultravox played by the test carrier Asterisk.

HTTP, as Ultravox's API schema has it (https://docs.ultravox.ai/api-reference; the
operations are named after its operationIds):
    POST   /api/agents                {name, callTemplate} -> 201 Agent       agents_create
    GET    /api/agents?search         -> {results, next, previous, total}    agents_list
    GET    /api/agents/{id}           -> Agent (404 {"detail": "Not found."}) agents_retrieve
    PATCH  /api/agents/{id}           {name?, callTemplate?} -> Agent         agents_partial_update
    DELETE /api/agents/{id}           -> 204                                  agents_destroy
    POST   /api/agents/{id}/calls     {templateContext, metadata, medium} -> 201 Call
                                         (Create Agent Call, StartAgentCallRequest; the
                                         SIP guide's "Outgoing SIP Calls": medium
                                         {"sip": {"outgoing": {to, from, username?,
                                         password?}}} makes Ultravox INVITE `to`)
    GET    /api/calls?agentIds&fromDate -> {results, next, ...}               calls_list
    GET    /api/calls/{id}            -> Call                                 calls_retrieve
    GET    /api/calls/{id}/messages   ?pageSize&cursor -> {results, next, ...} calls_messages_list
    GET    /api/sip                   -> SipConfig {domain, allowedCidrRanges, sip_retrieve
                                         allowAllAgents, allowedAgents}
    PATCH  /api/sip                   PatchedSipConfig -> SipConfig           sip_partial_update
    POST   /api/sip/registrations     {username, password, proxy} -> 201 ..._create
    GET    /api/sip/registrations     -> {results, ...}                  sip_registrations_list
    a missing or wrong X-API-Key      -> 401 {"detail": "Invalid API key."}
    an agent name outside [A-Za-z0-9_-]{1,64} -> 400 {"name": ["..."]}
    an unknown voice                  -> 400 {"detail": "Unknown voice: ..."}
    a temporary tool with no http or client implementation -> 400 (SelectedTool: "Exactly
                                         one implementation (http or client) should be set")
    metadata keys starting "ultravox." -> 400 (StartAgentCallRequest.metadata: reserved)
    an INVITE to an agent whose template has {{...}}: refused (CallTemplate.contextSchema:
                                         "Call creation requests must provide context
                                         adhering to this schema"; an INVITE has none)
    an agent call whose templateContext lacks a {{variable}} of the agent's prompt or first
                                         message -> 400 (the same); given them all, the
                                         call's systemPrompt is the prompt filled in

SIP (https://docs.ultravox.ai/telephony/sip, "Incoming SIP Calls"): an INVITE to
`agent_{agent_id}` creates a call from the agent's call template, admitted when its source
address is in allowedCidrRanges (the user must then be allowed: allowAllAgents or
allowedAgents) or when it arrives over a registration Ultravox made. The carrier Asterisk
(dialplan/carrier.conf, [ultravox-sip]) asks this fake, over the fake-only paths
`/_sip/invite` and `/_sip/bye` (no API key: they stand for Ultravox's own SIP servers), whether
to admit an INVITE and reports its end; the admitted call then plays the carrier line
`sip_line` (recording what it hears, running STEPS_<digits>). `on_registration(reg)` is
called when a registration is created, so a test can make the carrier register.
An agent call with the outgoing SIP medium calls `on_outgoing(call, outgoing)` (in a
thread, after answering the request): tests/fakes/ultravox_outgoing.py makes the carrier
originate the INVITE to `to` ([ultravox-sip-out] in its dialplan), which asks
`/_sip/joined` and then plays `sip_line` the same way.

The agent's built-in coldTransfer (https://docs.ultravox.ai/telephony/call-transfers,
"Built-in coldTransfer tool"): it "works with sip", takes its `target` from a parameter
override ("which should be a sip user"), and on a SIP call it is a REFER. The carrier's
scripted step `x[NAME]` (devtools test-caller.conf) asks `/_sip/transfer?call&tool` for
the target of the call's coldTransfer (the selected tool named NAME by `nameOverride`, or
the one `coldTransfer`); without a target override the tool call fails (404: the agent
carries on, no REFER). The answer is `sip:<target>@<the PBX>` (the INVITE's source, or
the outgoing medium's host), where the carrier sends the REFER; it then reports
Transfer()'s TRANSFERSTATUS to `/_sip/transferred` and, the REFER done, leaves the call
(hangs up, "removing the agent ... altogether"). `.transfers` holds {call, tool, target,
status} ("no-target" when there was none to send; None until the carrier reported).

Without an Asterisk (`emulate_invites = True`), listing an agent's calls creates the call
an INVITE would have made, and GET /api/calls/{id} ends it after the script's
`ended_after_polls`. What a call "said" and how it ended come from `script`.

Every request is recorded in `.requests`; `fail(method, prefix, status, body)` makes the next
matching request fail; `delay` makes every response slow (for client timeouts).
"""
from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import HTTPFake, read_json, send_json

VOICES = ["Mark", "Jessica", "Emily-English", "Tanya-English", "Mark-Spanish"]
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")     # a template variable

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
        self.sip = {"domain": "acct-0000.sip.ultravox.invalid", "allowedCidrRanges": [],
                    "allowAllAgents": False, "allowedAgents": [], "fallbackHandler": None}
        self.registrations: list[dict] = []
        self.registered_endpoints: set[str] = set()   # carrier endpoints a registration made
        self.on_registration = None
        self.on_outgoing = None                       # (call, outgoing medium) -> None
        self.agent_calls: list[dict] = []             # every agent call's request body
        self.sip_line = "+12025550103"
        self.emulate_invites = False
        self._emulated: set = set()
        self.invites: list[dict] = []                 # every INVITE the SIP side was asked about
        self.byes: list[dict] = []                    # every end the SIP side reported
        self.transfers: list[dict] = []               # every coldTransfer the agent made
        self._peers: dict[str, str] = {}              # call id -> the SIP peer's host:port
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

    def add_agent(self, name: str = "Sales", **template) -> dict:
        """An agent made as POST /api/agents would (for tests that need one up front)."""
        with self._lock:
            return self._create_agent({"name": name,
                                       "callTemplate": template or {"systemPrompt": "sell"}})[1]

    # --- request handling ---------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        body = read_json(h)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        record = {"method": method, "path": url.path, "query": query,
                  "headers": dict(h.headers), "json": body}
        if url.path.startswith("/_sip/"):
            return self._sip_side(h, url.path, query)
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
        if parts[:2] == ["api", "sip"]:
            return self._sip_api(method, parts[2:], body)
        return 404, {"detail": "Not found."}

    # SIP configuration and registrations
    def _sip_api(self, method, rest, body):
        if not rest and method == "GET":
            return 200, self.sip
        if not rest and method == "PATCH":
            if not isinstance(body, dict):
                return 400, {"detail": "JSON parse error."}
            for cidr in body.get("allowedCidrRanges") or []:
                try:
                    if ipaddress.ip_network(cidr).version != 4:
                        raise ValueError
                except ValueError:
                    return 400, {"allowedCidrRanges": [f"Enter a valid IPv4 CIDR: {cidr}"]}
            if len(body.get("allowedAgents") or []) > 20:
                return 400, {"allowedAgents": ["Ensure this field has no more than 20 elements."]}
            for key in ("allowedCidrRanges", "allowAllAgents", "allowedAgents"):
                if key in body:
                    self.sip[key] = body[key]
            return 200, self.sip
        if rest == ["registrations"] and method == "POST":
            if not isinstance(body, dict) or not body.get("password") or not body.get("proxy"):
                return 400, {"detail": "username, password and proxy are required."}
            reg = {"registrationId": str(uuid.uuid4()), "created": _now(),
                   "username": body.get("username"), "proxy": body["proxy"],
                   "outboundProxy": body.get("outboundProxy"), "successful": None}
            self.registrations.append({**reg, "password": body["password"]})
            if self.on_registration is not None:
                self.on_registration({**reg, "password": body["password"]})
            return 201, reg
        if rest == ["registrations"] and method == "GET":
            public = [{k: v for k, v in r.items() if k != "password"}
                      for r in self.registrations]
            return 200, {"results": public, "next": None, "previous": None,
                         "total": len(public)}
        return 405, {"detail": f'Method "{method}" not allowed.'}

    def _admitted(self, agent_id: str, source: str, endpoint: str) -> bool:
        if endpoint in self.registered_endpoints:
            return True
        host = source.rsplit(":", 1)[0].strip("[]")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        if not any(addr in ipaddress.ip_network(c) for c in self.sip["allowedCidrRanges"]):
            return False
        return bool(self.sip["allowAllAgents"]) or any(
            a.get("agentId") == agent_id for a in self.sip["allowedAgents"])

    def _sip_side(self, h: BaseHTTPRequestHandler, path: str, query: dict) -> None:
        with self._lock:
            if path == "/_sip/invite":
                user = query.get("user", "")
                agent_id = user[len("agent_"):] if user.startswith("agent_") else ""
                # an agent whose template uses {{variables}} needs context at call creation
                # (CallTemplate.contextSchema), which an INVITE cannot carry
                admitted = (agent_id in self.agents
                            and "{{" not in str(self.agents[agent_id]["callTemplate"])
                            and self._admitted(agent_id, query.get("source", ""),
                                               query.get("endpoint", "")))
                self.invites.append({**query, "admitted": admitted})
                if not admitted:
                    return _send_text(h, 403, "")
                call = self._invite_call(agent_id)
                call["joined"] = _now()
                self._peers[call["callId"]] = query.get("source", "")
                digits = "".join(c for c in self.sip_line if c.isdigit())
                return _send_text(h, 200, f"{call['callId']},{digits}")
            if path == "/_sip/joined":     # our outgoing INVITE was answered
                call = self.calls.get(query.get("call", ""))
                if call is None or call["ended"] is not None:
                    return _send_text(h, 404, "")
                call["joined"] = _now()
                return _send_text(h, 200, "".join(c for c in self.sip_line if c.isdigit()))
            if path == "/_sip/transfer":      # the agent calls its coldTransfer tool
                call = self.calls.get(query.get("call", ""))
                target = _transfer_target(call, query.get("tool") or "coldTransfer")
                self.transfers.append({"call": query.get("call"), "tool": query.get("tool"),
                                       "target": target,
                                       "status": None if target else "no-target"})
                peer = self._peer(call)
                return _send_text(h, 200 if target and peer else 404,
                                  f"sip:{target}@{peer}" if target and peer else "")
            if path == "/_sip/transferred":   # how the REFER went (Transfer()'s status)
                for t in reversed(self.transfers):
                    if t["call"] == query.get("call") and t["status"] is None:
                        t["status"] = query.get("status") or "UNKNOWN"
                        break
                return _send_text(h, 200, "ok")
            if path == "/_sip/bye":
                call_id = query.get("call", "")
                self.byes.append(query)
                if call_id in self.calls and self.calls[call_id]["ended"] is None:
                    # the carrier's dialplan hanging up (source "dialplan/builtin") is the
                    # agent ending the call; a BYE from trunx names the channel itself
                    agent_ended = query.get("source", "").startswith("dialplan/")
                    self._end(call_id, {**self.scripts[call_id],
                                        "endReason": "agent_hangup" if agent_ended
                                        else "hangup"}, joined_now=False)
                return _send_text(h, 200, "ok")
        return _send_text(h, 404, "")

    def _peer(self, call: dict | None) -> str | None:
        """Where the call's SIP leg goes: the INVITE's source, or the outgoing `to` host."""
        if call is None:
            return None
        to = ((call.get("medium") or {}).get("sip") or {}).get("outgoing", {}).get("to", "")
        peer = self._peers.get(call["callId"]) or to.partition("@")[2]
        return peer if re.fullmatch(r"[0-9.]+:[0-9]+", peer or "") else None

    def _invite_call(self, agent_id: str) -> dict:
        agent = self.agents[agent_id]
        call = self._new_call(dict(agent["callTemplate"] or {}), agent_id=agent_id)
        call["medium"] = {"sip": {"incoming": {}}}
        agent["statistics"]["calls"] += 1
        return call

    # agents
    def _agents(self, method, rest, query, body):
        if not rest:
            if method == "POST":
                return self._create_agent(body)
            if method == "GET":
                agents = [a for a in self.agents.values()
                          if query.get("search", "") in (a["name"] or "")]
                return 200, self._page(agents, query, "/api/agents")
            return 405, {"detail": f'Method "{method}" not allowed.'}
        agent = self.agents.get(rest[0])
        if agent is None:
            return 404, {"detail": "Not found."}
        if rest[1:] == ["calls"] and method == "POST":
            return self._agent_call(agent, body)
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

    def _agent_call(self, agent: dict, body):
        """Create Agent Call: the agent's template filled from templateContext."""
        if not isinstance(body, dict):
            return 400, {"detail": "JSON parse error."}
        context = body.get("templateContext") or {}
        metadata = body.get("metadata") or {}
        if not isinstance(context, dict) or not isinstance(metadata, dict):
            return 400, {"detail": "templateContext and metadata must be objects."}
        if any(str(k).lower().startswith("ultravox.") for k in metadata):
            return 400, {"metadata": ["Keys starting with 'ultravox.' are reserved."]}
        template = copy.deepcopy(agent["callTemplate"] or {})
        first = (template.get("firstSpeakerSettings") or {}).get("agent") or {}
        missing = [v for text in (template.get("systemPrompt"), first.get("text"))
                   for v in _VARIABLE.findall(text or "") if v not in context]
        if missing:
            return 400, {"templateContext": [f"Missing value for template variable "
                                             f"'{missing[0]}'."]}
        template["systemPrompt"] = _fill(template.get("systemPrompt"), context)
        if first.get("text"):
            first["text"] = _fill(first["text"], context)
        medium = body.get("medium") or {}
        outgoing = (medium.get("sip") or {}).get("outgoing") if isinstance(medium, dict) \
            else None
        if outgoing is not None and not str(outgoing.get("to", "")).startswith("sip:"):
            return 400, {"medium": ["sip.outgoing.to must be a SIP URI."]}
        call = self._new_call({**template, "metadata": metadata, "medium": medium},
                              agent_id=agent["agentId"])
        call["templateContext"] = context
        agent["statistics"]["calls"] += 1
        self.agent_calls.append(copy.deepcopy(body))
        if outgoing is not None and self.on_outgoing is not None:
            threading.Thread(target=self.on_outgoing, args=(dict(call), dict(outgoing)),
                             daemon=True).start()
        return 201, call

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
            return _check_tools(template.get("selectedTools") or [])
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
        if not rest and method == "GET":
            calls = list(self.calls.values())
            if query.get("agentIds"):
                wanted = set(query["agentIds"].split(","))
                if self.emulate_invites and query.get("fromDate") not in self._emulated:
                    # each bridge lists from its own moment: one INVITE per bridge
                    self._emulated.add(query.get("fromDate"))
                    calls += [self._invite_call(a) for a in wanted & set(self.agents)]
                calls = [c for c in calls if c["agentId"] in wanted]
            if query.get("fromDate"):
                since = _parse(query["fromDate"])
                calls = [c for c in calls if _parse(c["created"]) >= since]
            return 200, self._page(calls, query, "/api/calls")
        if not rest:
            return 405, {"detail": f'Method "{method}" not allowed.'}
        call = self.calls.get(rest[0])
        if call is None:
            return 404, {"detail": "Not found."}
        if len(rest) == 1 and method == "GET":
            self.polls[rest[0]] += 1
            script = self.scripts[rest[0]]
            if (self.emulate_invites and call["ended"] is None
                    and self.polls[rest[0]] > script["ended_after_polls"]):
                self._end(rest[0], script)
            return 200, call
        if len(rest) == 2 and rest[1] == "messages" and method == "GET":
            messages = self.scripts[rest[0]]["messages"] if call["ended"] else []
            return 200, self._page(messages, query, f"/api/calls/{rest[0]}/messages")
        return 404, {"detail": "Not found."}

    def _new_call(self, fields: dict, agent_id: str | None = None) -> dict:
        call_id = str(uuid.uuid4())
        call = {
            "callId": call_id, "created": _now(), "joined": None, "ended": None,
            "endReason": None, "agentId": agent_id,
            "systemPrompt": fields.get("systemPrompt"), "voice": fields.get("voice"),
            "model": fields.get("model") or "ultravox-v0.7",
            "temperature": fields.get("temperature", 0),
            "maxDuration": fields.get("maxDuration") or "3600s",
            "languageHint": fields.get("languageHint"),
            "firstSpeakerSettings": fields.get("firstSpeakerSettings") or {"agent": {}},
            "selectedTools": fields.get("selectedTools") or [],
            "metadata": fields.get("metadata") or {}, "medium": fields.get("medium"),
            "joinUrl": None, "billedDuration": None,
        }
        self.calls[call_id] = call
        self.scripts[call_id] = copy.deepcopy(self.script)
        self.polls[call_id] = 0
        return call

    def _end(self, call_id: str, script: dict, joined_now: bool = True) -> None:
        call = self.calls[call_id]
        self.scripts[call_id].update(copy.deepcopy(script))
        ended = dt.datetime.now(dt.UTC)
        if joined_now or not call["joined"]:
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


def _check_tools(tools: list) -> dict | None:
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return {"selectedTools": [f"{i}: Expected an object."]}
        if sum(k in tool for k in ("toolId", "toolName", "temporaryTool")) != 1:
            return {"selectedTools": [f"{i}: Exactly one of tool_id, tool_name, or "
                                      "temporary_tool should be set."]}
        temp = tool.get("temporaryTool")
        if temp is not None and ("http" in temp) == ("client" in temp):
            return {"selectedTools": [f"{i}: Exactly one implementation (http or client) "
                                      "should be set."]}
    return None


def _transfer_target(call: dict | None, name: str) -> str | None:
    """The `target` override of the call's coldTransfer tool called `name` (its
    nameOverride, else its toolName), or None: the guide's coldTransfer needs one."""
    for tool in (call or {}).get("selectedTools") or []:
        if tool.get("toolName") == "coldTransfer" and \
                (tool.get("nameOverride") or "coldTransfer") == name:
            target = (tool.get("parameterOverrides") or {}).get("target")
            # a SIP URI's user part, as the carrier's CLI-free REFER can take it safely
            if isinstance(target, str) and re.fullmatch(r"[A-Za-z0-9+_.~-]{1,140}", target):
                return target
            return None
    return None


def _fill(text: str | None, context: dict) -> str | None:
    return _VARIABLE.sub(lambda m: str(context[m.group(1)]), text) if text else text


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _send_text(h: BaseHTTPRequestHandler, status: int, text: str) -> None:
    data = text.encode()
    h.send_response(status)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


async def attach_carrier(fake: FakeUltravox, carrier, carrier_ami, line: str,
                         allow: str | None = "127.0.0.1/32") -> None:
    """Make the test carrier Ultravox's SIP side: the account's SIP domain is the carrier's
    address, the carrier asks this fake about each INVITE to agent_*, and admitted calls
    play `line`. `allow` pre-sets the allowlist (None: leave it as trunx sets it)."""
    for module in ("res_curl.so", "func_curl.so",   # the carrier's dialplan asks us by CURL
                   "app_transfer.so"):              # and sends a REFER for a coldTransfer
        if module.split(".")[0] not in carrier.cli(f"module show like {module}"):
            carrier.cli(f"module load {module}")
    fake.sip["domain"] = f"127.0.0.1:{carrier.sip_port}"
    fake.sip_line = line
    if allow:
        fake.sip.update(allowedCidrRanges=[allow], allowAllAgents=True)
    await carrier_ami.action("Setvar", {"Variable": "ULTRAVOX_FAKE", "Value": fake.base_url})


def register_from_carrier(fake: FakeUltravox, carrier) -> None:
    """When trunx creates a registration, the carrier (Ultravox's SIP side) registers with
    the registration's proxy as its username, with `line` support, so INVITEs over it reach
    its endpoint `ultravox-registered`, which the fake then admits."""
    def register(reg: dict) -> None:
        host = reg["proxy"] if ":" in reg["proxy"] else f"{reg['proxy']}:5060"
        conf = (f"[ultravox-reg]\ntype = registration\ntransport = transport-ultravox\n"
                f"server_uri = sip:{host}\nclient_uri = sip:{reg['username']}@{host}\n"
                f"contact_user = {reg['username']}\noutbound_auth = ultravox-reg-auth\n"
                f"line = yes\nendpoint = ultravox-registered\nretry_interval = 2\n"
                f"forbidden_retry_interval = 2\nfatal_retry_interval = 2\n"
                f"auth_rejection_permanent = no\nexpiration = 120\n\n"
                f"[ultravox-reg-auth]\ntype = auth\nauth_type = userpass\n"
                f"username = {reg['username']}\npassword = {reg['password']}\n")
        (carrier.instance_dir_host / "etc" / "pjsip_ultravox_registration.conf").write_text(conf)
        carrier.cli("module reload res_pjsip.so")
        for module in ("res_pjsip_outbound_authenticator_digest.so",
                       "res_pjsip_outbound_registration.so"):   # the PBX role loads neither
            if module.split(".")[0] not in carrier.cli(f"module show like {module}"):
                carrier.cli(f"module load {module}")
        fake.registered_endpoints.add("ultravox-registered")
    fake.on_registration = register

