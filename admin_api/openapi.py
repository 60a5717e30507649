"""GET /openapi.json: the API described as data (OpenAPI 3.1).

A test walks the app's URL map and this document both ways, so a route cannot be added
or dropped without the description following. The request schemas here are also what the
routes validate bodies with (context.json_body(schema=...), admin_api/validation.py), and
the identifier and number patterns come from trunx/patterns.py, which the IVR validator
uses too: each limit is written once. `x-error` names the problem code a failing
subschema answers with (validation.py); `x-message` its sentence.
"""
from __future__ import annotations

from flask import Blueprint

from trunx import patterns, ultravox_sip, ultravox_tools, ultravox_transfer, url_policy
from trunx.media.pipeline import MAX_TEXT_CHARS
from trunx.patterns import schema_pattern

bp = Blueprint("openapi", __name__)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


STR = {"type": "string"}
NUM = {"type": "number"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TS = {"type": "string", "format": "date-time", "examples": ["2026-03-09T15:30:00.000Z"]}
E164 = {"type": "string", "pattern": schema_pattern(patterns.PHONE),
        "examples": ["+19495551234"], "x-error": "invalid-number",
        "x-message": "must be an E.164 number like +19495551234 (+1 numbers: NANP)"}
NAME = {"type": "string", "pattern": schema_pattern(patterns.NAME)}
AUDIO_REF = {"type": "string", "pattern": schema_pattern(patterns.AUDIO_REF),
             "maxLength": patterns.AUDIO_REF_MAX,
             "description": "an audio asset id, an asset name, or a relative Asterisk sound "
                            "name; never a path"}
DTMF_MAP = {"type": "object", "minProperties": 1,
            "propertyNames": {"pattern": schema_pattern(patterns.DTMF_KEYS)},
            "additionalProperties": NAME}


def line(max_len: int, *, nullable: bool = False, text: bool = False, **extra) -> dict:
    """A string of at most `max_len` with no control characters (`text`: tab, CR and LF
    allowed), as context.check_text refuses them."""
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_len,
            "pattern": schema_pattern(patterns.TEXT if text else patterns.SINGLE_LINE),
            "x-error": {"pattern": "invalid-characters", "maxLength": "too-long",
                        "type": "invalid-type"}, **extra}


def required_line(max_len: int, *, text: bool = False, **extra) -> dict:
    """As `line`, and not blank (context.required_str)."""
    out = line(max_len, text=text, **extra)
    out["not"] = {"pattern": r"^\s*$"}
    out["x-error"] = {**out["x-error"], "not": "required", "type": "required"}
    return out


URL = {"type": "string", "maxLength": url_policy.MAX_URL,
       "pattern": schema_pattern(patterns.URL), "x-error": "invalid-url",
       "x-message": "must be an http or https URL",
       "description": "http(s); its host must not resolve to loopback, private or "
                      "link-local addresses unless the operator allows them "
                      "(422 url-not-allowed)"}

SCHEMAS = {
    "Problem": obj(["field", "code", "message"], field=STR, code=STR, message=STR),
    "Error": obj(["error"], error=obj(
        ["code", "message", "details"], code={**STR, "description": "stable kebab-case id"},
        message=STR,
        details={"description": "an object, or for invalid-ivr / invalid-request a list of "
                                "Problem"})),
    "Audio": obj(["id", "name", "url", "durationSeconds"], id=STR, name=STR,
                 url={**STR, "format": "uri"}, durationSeconds=NUM,
                 warnings={"type": "array", "items": ref("Problem")}),
    "AudioList": obj(["audio"], audio={"type": "array", "items": ref("Audio")}),
    "TtsRequest": obj(["name", "text"], name=required_line(200),
                      text=required_line(MAX_TEXT_CHARS, text=True),
                      voice=line(200, nullable=True,
                                 description="ElevenLabs voice id or name, or an espeak-ng "
                                             "voice on the standard engine"),
                      engine=line(200, nullable=True,
                                  description="standard | neural (default: neural when a "
                                              "neural voice is here)")),
    "UploadRequest": obj(["file"], file={**STR, "contentMediaType": "audio/*"},
                         name={**STR, "description": "defaults to the file name"}),
    "GatherNode": obj(["audio", "gather"], audio=AUDIO_REF, gather=DTMF_MAP,
                      timeout_node=NAME, timeout={**NUM, "minimum": 0.5, "maximum": 60},
                      max_tries={**INT, "minimum": 1, "maximum": 10},
                      max_digits={**INT, "minimum": 1, "maximum": 20},
                      invalid_audio=AUDIO_REF, invalid_node=NAME),
    # `to` and `agent` belong to transfers only (trunx/ivr/tree.py)
    "TransferNode": obj(["action"], action={"const": "transfer"}, audio=AUDIO_REF, to=E164,
                        agent=NAME, timeout={**NUM, "minimum": 1, "maximum": 300}),
    "ActionNode": obj(["action"], action={"enum": ["hangup", "suppress"]}, audio=AUDIO_REF,
                      timeout={**NUM, "minimum": 1, "maximum": 300}),
    # the three exclude each other (gather or action; action values apart): anyOf is oneOf
    "Node": {"anyOf": [ref("GatherNode"), ref("TransferNode"), ref("ActionNode")]},
    "IvrRequest": obj(["nodes"], id=NAME, start=NAME,
                      nodes={"type": "object", "minProperties": 1, "maxProperties": 500,
                             "propertyNames": NAME, "additionalProperties": ref("Node")}),
    "IvrPatch": {**obj([], id={**NAME, "description": "if sent, must equal the path id"},
                       start={"type": ["string", "null"]},
                       nodes={"type": "object", "minProperties": 1, "maxProperties": 500,
                              "propertyNames": NAME, "additionalProperties": ref("Node")}),
                 "anyOf": [{"required": ["nodes"]}, {"required": ["start"]}]},
    "Ivr": obj(["id", "nodes", "version", "createdAt", "updatedAt", "dids", "warnings"],
               id=STR, start=STR, nodes={"type": "object", "additionalProperties": ref("Node")},
               version=INT, createdAt=TS, updatedAt=TS, dids={"type": "array", "items": E164},
               warnings={"type": "array", "items": ref("Problem")}),
    "IvrList": obj(["ivrs", "count"], ivrs={"type": "array", "items": ref("Ivr")}, count=INT),
    "NodeAudioRequest": obj(["node", "text"], node={**NAME, "x-error": "invalid-name"},
                            text=required_line(MAX_TEXT_CHARS, text=True),
                            voice=line(200, nullable=True)),
    "AssignRequest": obj(["did"], did=E164),
    "AssignResponse": obj(["ivr", "did", "assigned", "previous"], ivr=STR, did=E164,
                          assigned={"const": True}, previous={"type": ["string", "null"]}),
    "Did": obj(["number", "label", "ivr", "createdAt"], number=E164,
               label={"type": ["string", "null"]}, ivr={"type": ["string", "null"]},
               createdAt=TS),
    "DidRequest": obj(["number"], number=E164, label=line(200, nullable=True)),
    "DidList": obj(["dids", "count"], dids={"type": "array", "items": ref("Did")}, count=INT),
    "Deleted": obj(["deleted"], deleted={"const": True}, id=STR, number=STR),
}

# POST /ivr/{id}/audio answers the updated IVR plus the node and the new asset
SCHEMAS["NodeAudioResponse"] = {
    **SCHEMAS["Ivr"], "required": SCHEMAS["Ivr"]["required"] + ["node", "audio"],
    "properties": {**SCHEMAS["Ivr"]["properties"], "node": NAME, "audio": ref("Audio")}}


def json_body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


def ok(schema: str, status: str = "200", description: str = "OK") -> dict:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": ref(schema)}}}}


def errors(*statuses: int) -> dict:
    return {str(s): {"description": "error", "content": {"application/json": {
        "schema": ref("Error")}}} for s in (401, 429, *statuses)}   # 429: quotas


def op(summary: str, responses: dict, body: dict | None = None, tag: str = "",
       params: list | None = None) -> dict:
    out = {"summary": summary, "tags": [tag], "responses": responses}
    if body:
        out["requestBody"] = body
    if params:
        out["parameters"] = params
    return out


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": STR,
            "description": description}


AUDIO_ID = [path_param("audio_id", "audio asset id, e.g. aud_3f2a...")]
IVR_ID = [path_param("ivr_id", "the IVR's id, e.g. qualify-business")]
NUMBER = [path_param("number", "E.164 number, URL-encoded: %2B19495551234")]
FORCE = {"name": "force", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["true", "false"]},
         "description": "delete even while IVRs play it"}
UPLOAD = {"required": True,
          "content": {"multipart/form-data": {"schema": ref("UploadRequest")}}}
WAV = {"200": {"description": "8 kHz mono 16-bit WAV",
               "content": {"audio/wav": {"schema": {"type": "string",
                                                    "contentMediaType": "audio/wav"}}}}}

PATHS = {
    "/audio": {
        "post": op("Generate TTS audio", {**ok("Audio", "201", "created"),
                                          **errors(400, 415, 422, 502, 503)},
                   json_body("TtsRequest"), "audio"),
        "get": op("List audio files", {**ok("AudioList"), **errors()}, tag="audio"),
    },
    "/audio/upload": {
        "post": op("Upload audio file", {**ok("Audio", "201", "created"),
                                         **errors(413, 415, 422, 502)}, UPLOAD, "audio"),
    },
    "/audio/{audio_id}/file": {
        "get": op("Download the transcoded WAV", {**WAV, **errors(404)}, tag="audio",
                  params=AUDIO_ID),
    },
    "/audio/{audio_id}": {
        "delete": op("Delete audio file", {**ok("Deleted"), **errors(404, 409, 502)},
                     tag="audio", params=AUDIO_ID + [FORCE]),
    },
    "/ivr": {
        "post": op("Create IVR", {**ok("Ivr", "201", "created"),
                                  **errors(400, 409, 415, 422)}, json_body("IvrRequest"), "ivr"),
        "get": op("List IVRs", {**ok("IvrList"), **errors()}, tag="ivr"),
    },
    "/ivr/{ivr_id}": {
        "get": op("Get IVR", {**ok("Ivr"), **errors(404)}, tag="ivr", params=IVR_ID),
        "patch": op("Update IVR (new version, live for new calls)",
                    {**ok("Ivr"), **errors(400, 404, 409, 415, 422)}, json_body("IvrPatch"),
                    "ivr", IVR_ID),
        "delete": op("Delete IVR", {**ok("Deleted"), **errors(404, 409)}, tag="ivr",
                     params=IVR_ID),
    },
    "/ivr/{ivr_id}/audio": {
        "post": op("Generate TTS audio for a node",
                   {**ok("NodeAudioResponse", "201", "created"),
                    **errors(400, 404, 415, 422, 502, 503)}, json_body("NodeAudioRequest"),
                   "ivr", IVR_ID),
    },
    "/ivr/{ivr_id}/assign": {
        "post": op("Assign IVR to DID", {**ok("AssignResponse"), **errors(400, 404, 415, 422)},
                   json_body("AssignRequest"), "ivr", IVR_ID),
    },
    "/api/dids": {
        "post": op("Register a DID (trunx addition)", {**ok("Did", "201", "created"),
                                                       **errors(400, 403, 409, 413, 415,
                                                                422)},
                   json_body("DidRequest"), "dids"),
        "get": op("List DIDs", {**ok("DidList"), **errors()}, tag="dids"),
    },
    "/api/dids/{number}": {
        "delete": op("Delete a DID (unassigns it first)", {**ok("Deleted"), **errors(404)},
                     tag="dids", params=NUMBER),
    },
    "/openapi.json": {
        "get": {"summary": "This document", "tags": ["meta"], "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}}},
    },
}

# -- answering-machine detection (admin_api/voice/amd.py) --------------------------------------
_DROP_NAME = {"type": ["string", "null"], "minLength": 1, "maxLength": 100}
DROP = {"oneOf": [
    {**STR, "minLength": 1, "maxLength": 64, "description": "one of the account's audio "
                                                           "asset ids"},
    obj(["text"], text={**STR, "pattern": r"\S", "maxLength": 5000}, voice=_DROP_NAME,
        engine=_DROP_NAME)],
    "description": "played from its first sample when a voicemail greeting ends"}
ANSWERED_BY = {"enum": ["human", "machine_start", "machine_end_beep", "machine_end_silence",
                        "machine_end_other", "fax", "unknown"]}
AMD_FIELDS = dict(
    machineDetection={"enum": ["Enable", "DetectMessageEnd"],
                      "description": "Twilio's: decide early, or wait for the greeting's end"},
    asyncAmd={"type": "boolean", "default": True,
              "description": "the call goes on while detection runs; call.amd carries it"},
    machineDetectionTimeout={**INT, "minimum": 2, "maximum": 60, "default": 30,
                             "x-error": "out-of-range"},
    machineDetectionSpeechThreshold={**INT, "minimum": 1000, "maximum": 6000, "default": 2400,
                                     "x-error": "out-of-range"},
    machineDetectionSpeechEndThreshold={**INT, "minimum": 500, "maximum": 5000,
                                        "default": 1200, "x-error": "out-of-range"},
    machineDetectionSilenceTimeout={**INT, "minimum": 2000, "maximum": 10000, "default": 5000,
                                    "x-error": "out-of-range"},
    voicemailDrop=DROP)

# -- Agents (seed 003) ----------------------------------------------------------------------
ID_LIST = {"type": ["array", "null"], "maxItems": 50, "uniqueItems": True,
           "items": {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,128}$"}}
# Ultravox takes a durable tool's UUID or a built-in tool's name (trunx/ultravox_tools.py)
TOOL_ID_LIST = {**ID_LIST, "items": {"anyOf": [
    {"type": "string", "pattern": ultravox_sip.UUID_PATTERN},
    {"enum": list(ultravox_tools.BUILT_IN)}], "x-error": "invalid-tool-id"}}
NOT_BLANK = {"not": {"pattern": r"^\s*$"}}      # as admin_api/agents/routes.py _text
# coldTransfer targets: a number, or an IVR node of the account (trunx/ultravox_transfer.py)
TRANSFER_LIST = {"type": ["array", "null"], "maxItems": ultravox_transfer.MAX_TARGETS,
                 "uniqueItems": True, "items": {"type": "string", "anyOf": [
                     {"pattern": schema_pattern(patterns.E164)},
                     {"pattern": schema_pattern(f"ivr:{patterns.NAME}#{patterns.NAME}")}],
                     "examples": ["+14155550100", "ivr:sales#menu"]},
                 "x-error": "invalid-transfer-target",
                 "description": "where the agent's coldTransfer may send the caller"}


def _agent_text(max_len: int, nullable: bool, **extra) -> dict:
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_len,
            **NOT_BLANK, **extra}


AGENT_FIELDS = dict(
    name=_agent_text(200, False), prompt=_agent_text(20000, False),
    voice=_agent_text(200, True, examples=["Mark"]),
    first_message=_agent_text(2000, True),
    language={"type": ["string", "null"], "maxLength": 16, "default": "en",
              "pattern": r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"},
    tool_ids=TOOL_ID_LIST, knowledge_ids=ID_LIST, transfers=TRANSFER_LIST,
    max_duration={"type": ["number", "null"], "minimum": 1, "maximum": 86400,
                  "default": 300},
    voicemail_drop={"oneOf": [{"type": "null"}, *DROP["oneOf"]]})
SCHEMAS.update({
    "AgentRequest": obj(["name", "prompt"], **AGENT_FIELDS),
    "AgentPatch": obj([], **AGENT_FIELDS),
    "AgentCreated": obj(["id", "name", "ultravoxId"], id=STR, name=STR, ultravoxId=STR),
    "AgentSummary": obj(["id", "name", "ultravoxId", "createdAt"], id=STR, name=STR,
                        ultravoxId={"type": ["string", "null"]}, createdAt=TS),
    "AgentList": obj(["agents", "count"], agents={"type": "array", "items": ref("AgentSummary")},
                     count=INT),
    "Agent": obj(
        ["id", "name", "ultravoxId", "prompt", "voice", "first_message", "language",
         "max_duration", "tool_ids", "knowledge_ids", "createdAt"],
        id=STR, name=STR, ultravoxId={"type": ["string", "null"]}, prompt=STR,
        voice={"type": ["string", "null"]}, first_message={"type": ["string", "null"]},
        language=STR, max_duration=NUM, tool_ids={"type": "array", "items": STR},
        knowledge_ids={"type": "array", "items": STR}, createdAt=TS, updatedAt=TS,
        transfers={"type": "array", "items": STR},
        voicemail_drop={"oneOf": [{"type": "null"}, *DROP["oneOf"]]},
        ultravoxStatus={"enum": ["active", "missing", "unreachable", "not-configured"],
                        "description": "what Ultravox says of the agent's twin, asked live"},
        ultravoxError={"type": "object", "description": "why Ultravox could not be asked"}),
    "AgentCallRequest": obj(["to"], to=E164, **AMD_FIELDS, **{"from": {
        **E164, "description": "one of the account's DIDs; chosen by local presence and "
                               "health when left out"}}),
    "AgentCallResponse": obj(
        ["id", "callId", "status", "agentId", "from", "fromReason"], id=STR,
        callId={**STR, "examples": ["CA0123456789abcdef0123456789abcdef"]},
        status={"const": "initiated"}, agentId=STR, to=E164, **{
            "from": E164,
            "fromReason": {"enum": ["requested", "same-area-code", "same-state",
                                    "health-score"]},
            "fromHealth": {"type": "object", "description": "the chosen DID's health: score "
                           "0-100, calls, answerRate (people), machineAnswers, "
                           "machineRate, shortCallRate, failureRate, callsLastHour"}}),
})
AGENT_ID = [path_param("agent_id", "the agent's id (a UUID)")]
LIMIT = {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
         "description": "max agents to return, newest first"}
PATHS.update({
    "/api/voice/agents": {
        "post": op("Create agent (and its Ultravox agent)",
                   {**ok("AgentCreated", "201", "created"),
                    **errors(400, 415, 422, 502, 503, 504)}, json_body("AgentRequest"),
                   "agents"),
        "get": op("List agents", {**ok("AgentList"), **errors(422)}, tag="agents",
                  params=[LIMIT]),
    },
    "/api/voice/agents/{agent_id}": {
        "get": op("Get agent, with its live Ultravox status", {**ok("Agent"), **errors(404)},
                  tag="agents", params=AGENT_ID),
        "patch": op("Update agent (and its Ultravox agent)",
                    {**ok("Agent"), **errors(400, 404, 415, 422, 502, 503, 504)},
                    json_body("AgentPatch"), "agents", AGENT_ID),
        "delete": op("Delete agent (and its Ultravox agent)",
                     {**ok("Deleted"), **errors(404, 502, 503, 504)}, tag="agents",
                     params=AGENT_ID),
    },
    "/api/voice/agents/{agent_id}/call": {
        "post": op("Place a call through the agent",
                   {**ok("AgentCallResponse", "201", "call placed"),
                    **errors(400, 403, 404, 415, 422, 503)}, json_body("AgentCallRequest"),
                   "agents", AGENT_ID),
    },
})


# -- Voice (seed 002), suppressions and the account (trunx additions) ------------------------
NULL_STR = {"type": ["string", "null"]}
# as admin_api/voice/service.py checks them (check_ai): its codes in x-error
TOOL = obj(["modelToolName", "description"],
           modelToolName={**STR, "pattern": r"^[A-Za-z0-9_-]{1,64}$", "x-error": "required"},
           description={**STR, "not": {"pattern": r"^\s*$"}, "x-error": "required"},
           dynamicParameters={"type": ["array", "null"], "items": {"type": "object"},
                              "x-error": "invalid-type"},
           http={**obj([], baseUrlPattern={**URL, "type": ["string", "null"]},
                       httpMethod={"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", None]}),
                 "type": ["object", "null"], "x-error": {"type": "invalid-type",
                                                         "additionalProperties": "invalid-type"}})
AI_TEXT = {"type": ["string", "null"], "maxLength": 200, "not": {"pattern": r"^\s*$"},
           "x-error": {"type": "invalid-type", "not": "invalid-type", "maxLength": "too-long"}}
AI_KEYS = ("model", "voice", "tools", "firstSpeaker", "temperature")
CALL_STATUS = {"enum": ["initiated", "ringing", "answered", "completed", "failed"]}
SCHEMAS.update({
    "Tool": TOOL,
    "VoiceRequest": {**obj(
        ["from", "to"], to=E164,
        systemPrompt={**STR, "maxLength": 20000, "not": {"pattern": r"^\s*$"},
                      "x-error": {"type": "invalid-type", "not": "invalid-type",
                                  "maxLength": "too-long"},
                      "description": "present: an AI call; absent: a plain call"},
        model={**AI_TEXT, "examples": ["fixie-ai/ultravox-70B"]},
        voice={**AI_TEXT, "examples": ["Mark"]},
        tools={"type": ["array", "null"], "maxItems": 50, "items": ref("Tool"),
               "x-error": {"type": "invalid-type", "maxItems": "invalid-type"}},
        firstSpeaker={"enum": ["agent", "user", None], "default": "agent"},
        temperature={"type": ["number", "null"], "minimum": 0, "maximum": 1,
                     "x-error": "out-of-range"},
        maxDuration={"type": ["string", "number", "null"],
                     "pattern": schema_pattern(patterns.DURATION), "minimum": 1,
                     "maximum": 86400, "examples": ["300s"],
                     "x-error": {"type": "invalid-duration", "pattern": "invalid-duration"},
                     "description": "hang up this long after answer: \"300s\" or seconds"},
        metadata={"type": ["object", "null"], "maxProperties": 50,
                  "propertyNames": {"maxLength": 64},
                  "additionalProperties": {**STR, "maxLength": 500,
                                           "x-error": {"maxLength": "too-long"}},
                  "x-error": {"type": "invalid-type", "propertyNames": "too-long"}},
        webhookUrl={**URL, "type": ["string", "null"],
                    "description": "status webhooks for this call (else the account's "
                                   "default); " + URL["description"]},
        **AMD_FIELDS,
        **{"from": {**E164, "description": "one of the account's DIDs"}}),
        # the AI fields make an AI call: they need its systemPrompt
        "dependentRequired": {key: ["systemPrompt"] for key in AI_KEYS},
        "x-error": {"dependentRequired": "requires-system-prompt"}},
    "VoiceCreated": obj(["id", "callId", "status"], id=STR,
                        callId={**STR, "examples": ["CA0123456789abcdef0123456789abcdef"]},
                        status={"const": "initiated"}),
    "CallAi": obj(["status", "transcript", "duration", "endReason"], status=STR,
                  transcript=NULL_STR, duration={"type": ["number", "null"]},
                  endReason=NULL_STR),
    "Call": obj(
        ["id", "from", "to", "status", "provider", "direction", "duration", "createdAt",
         "callId"], id=STR, to=E164, status=CALL_STATUS,
        provider={"enum": ["asterisk", "ultravox"]}, direction={"const": "outbound"},
        duration={"type": ["integer", "null"], "description": "seconds from answer to hangup; "
                                                              "null until the call ends"},
        createdAt=TS, ai=ref("CallAi"), callId=STR, agentId=STR,
        answeredAt={"type": ["string", "null"], "format": "date-time"},
        endedAt={"type": ["string", "null"], "format": "date-time"},
        endReason=NULL_STR, metadata={"type": "object", "additionalProperties": STR},
        answeredBy={"oneOf": [{"type": "null"}, ANSWERED_BY],
                    "description": "with machineDetection: who answered (null until known)"},
        queuedAt=TS, queuePosition={**INT, "minimum": 1},
        recordings={"type": "array", "description": "Call Actions recordings, when any",
                    "items": obj(["recording_uuid", "status", "format", "url", "duration"],
                                 recording_uuid=STR,
                                 status={"enum": ["starting", "recording", "stopped",
                                                  "failed"]},
                                 format={"enum": ["mp3", "wav"]}, url=STR,
                                 duration={"type": ["integer", "null"]})},
        **{"from": E164}),
    "Ended": obj(["ended"], ended=BOOL, pending={"const": True}),
    "SuppressionRequest": obj(["number"], number=E164, reason=line(500, nullable=True)),
    "Suppression": obj(["number", "reason", "source", "callId", "did", "node", "ivr",
                        "createdAt"], number=E164, reason=NULL_STR,
                       source={"enum": ["api", "ivr"]}, callId=NULL_STR, did=NULL_STR,
                       node=NULL_STR, ivr=NULL_STR, createdAt=TS),
    "SuppressionList": obj(["suppressions", "count"],
                           suppressions={"type": "array", "items": ref("Suppression")},
                           count=INT),
    "Account": obj(["id", "name", "webhookUrl", "webhookSecret", "webhookSecretSource",
                    "default_transfer", "createdAt"], id=STR, name=STR, webhookUrl=NULL_STR,
                   webhookSecret=NULL_STR, webhookSecretSource={"enum": ["account", "operator"]},
                   webhookSecretPreviousUntil={
                       "type": ["string", "null"], "format": "date-time",
                       "description": "after a rotation, until when webhooks are also "
                                      "signed with the previous secret"},
                   default_transfer=NULL_STR, createdAt=TS,
                   maxConcurrentCalls={"type": ["integer", "null"]},
                   callsPerSecond={"type": ["number", "null"]}),
    "AccountPatch": obj([], webhookUrl={**URL, "type": ["string", "null"]},
                        maxConcurrentCalls={
                            "type": ["integer", "null"], "minimum": 1, "maximum": 100000,
                            "description": "outbound calls ringing or answered at once, on "
                                           "all engines; more wait their turn (the "
                                           "operator's max_concurrent_calls still holds); "
                                           "null: the operator's"},
                        callsPerSecond={
                            "type": ["number", "null"], "minimum": 0.01, "maximum": 1000,
                            "description": "outbound calls this account places per second "
                                           "at most, within the shared pace; null: no own "
                                           "limit"},
                        default_transfer={
                            "type": ["string", "null"], "x-error": "invalid-transfer-target",
                            "description": "where an IVR transfer node naming no to or agent "
                                           "sends the caller: an agent id of this account or "
                                           "an E.164 number; null clears it"}),
})
CALL_ID = [path_param("call_id", "the call's id (a UUID), as POST /api/voice answered")]
PATHS.update({
    "/api/voice": {
        "post": op("Create call (plain, or AI with systemPrompt)",
                   {**ok("VoiceCreated", "201", "queued for the engine"),
                    **errors(400, 403, 415, 422, 503)}, json_body("VoiceRequest"), "voice"),
    },
    "/api/voice/{call_id}": {
        "get": op("Get call details", {**ok("Call"), **errors(404)}, tag="voice",
                  params=CALL_ID),
        "delete": op("End call", {**ok("Ended"), **ok("Ended", "202", "the engine has not "
                                                        "confirmed yet; it will end the call"),
                                  **errors(404)}, tag="voice", params=CALL_ID),
    },
    "/api/suppressions": {
        "get": op("List the do-not-call list", {**ok("SuppressionList"), **errors()},
                  tag="suppressions"),
        "post": op("Add a number (idempotent: 200 if it was there)",
                   {**ok("Suppression", "201", "added"), **ok("Suppression"),
                    **errors(400, 415, 422)}, json_body("SuppressionRequest"), "suppressions"),
    },
    "/api/suppressions/{number}": {
        "delete": op("Remove a number", {**ok("Deleted"), **errors(404)}, tag="suppressions",
                     params=NUMBER),
    },
    "/api/account": {
        "get": op("The calling account", {**ok("Account"), **errors()}, tag="account"),
        "patch": op("Set the default webhook URL and transfer target",
                    {**ok("Account"), **errors(400, 413, 415, 422)},
                    json_body("AccountPatch"), "account"),
    },
    "/api/account/webhook-secret": {
        "post": op("Rotate the webhook secret (the old one signs too for a while)",
                   {**ok("Account"), **errors(409)}, tag="account"),
    },
})


# -- Call actions (seed 004), with trunx's action state and recording file -----------------
UUID = {"type": "string", "format": "uuid"}
SCHEMAS.update({
    "TransferRequest": obj(["to"], to=E164, caller_id={
        **E164, "type": ["string", "null"],
        "description": "one of the account's DIDs; else the call's caller ID"},
        answer_url={**URL, "type": ["string", "null"],
                    "description": "gets a signed webhook when the new leg answers; "
                                   + URL["description"]},
        mode={"enum": ["blind", "attended"], "default": "blind",
              "description": "attended: the caller hears music on hold while the target is "
                             "called; then POST .../transfer/{transfer_uuid}/complete or "
                             "/cancel. 409 call-bridged while the call is in a bridge"}),
    "TransferResponse": obj(["transfer_uuid", "status", "to"], transfer_uuid=UUID,
                            status={"enum": ["transferring", "consulting"]}, to=E164,
                            mode={"const": "attended"}),
    "TransferFinish": obj(["transfer_uuid", "status"], transfer_uuid=UUID,
                          status={"enum": ["completing", "canceling"]}),
    "RecordRequest": obj([], format={"enum": ["mp3", "wav"], "default": "mp3"},
                         max_length={**INT, "minimum": 1, "maximum": 86400, "default": 14400,
                                     "x-error": "out-of-range"},
                         trim_silence={**BOOL, "default": False}),
    "RecordResponse": obj(["recording_uuid", "status", "format"], recording_uuid=UUID,
                          status={"const": "recording"}, format={"enum": ["mp3", "wav"]}),
    "RecordStopped": obj(["recording_uuid", "status", "url", "duration"], recording_uuid=UUID,
                         status={"const": "stopped"}, url={**STR, "format": "uri"},
                         duration={**INT, "description": "seconds, rounded"},
                         duration_ms={**INT, "description": "measured length (trunx)"}),
    "RecordStopping": obj(["recording_uuid", "status"], recording_uuid=UUID,
                          status={"const": "stopping"}),
    "PlayRequest": obj([], url={**STR, "format": "uri",
                                "description": "mp3 or wav; this API's own GET /audio url "
                                               "of an asset plays that asset (no fetch)"},
                       audio_id={**STR, "description": "one of the account's audio assets "
                                                       "(trunx); exactly one of url, audio_id"},
                       loop={**INT, "minimum": 0, "maximum": 1000, "default": 1,
                             "description": "0: until another action or the hangup"}),
    "PlayResponse": obj(["play_uuid", "status"], play_uuid=UUID,
                        status={"const": "playing"}, url=STR, audio_id=STR),
    "SpeakRequest": obj(["text"], text=required_line(3000, text=True),
                        voice={**STR, "minLength": 1, "maxLength": 100,
                               "pattern": schema_pattern(patterns.SINGLE_LINE),
                               "default": "en-US-Standard-A", "x-error": "invalid-type"},
                        language={**STR, "maxLength": 100, "default": "en-US",
                                  "pattern": r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
                                  "x-error": {"type": "invalid-type",
                                              "maxLength": "invalid-type"}},
                        engine={"enum": ["standard", "neural"],
                                "description": "neural needs ELEVENLABS_API_KEY (else 503); "
                                               "left out: neural when configured, else "
                                               "standard (espeak-ng)"}),
    "SpeakResponse": obj(["speak_uuid", "status", "text"], speak_uuid=UUID,
                         status={"const": "speaking"}, text=STR),
    "DtmfRequest": obj(["digits"], digits={**STR, "pattern": r"^[0-9*#]{1,100}$",
                                           "x-error": "invalid-digits"}),
    "DtmfResponse": obj(["dtmf_uuid", "status", "digits"], dtmf_uuid=UUID,
                        status={"const": "sent"}, digits=STR),
    "Action": obj(
        ["action_uuid", "type", "call_uuid", "status"], action_uuid=UUID,
        type={"enum": ["transfer", "record", "record_stop", "play", "speak", "dtmf"]},
        call_uuid=STR,
        status={"enum": ["queued", "transferring", "answered", "starting", "recording",
                         "stopping", "stopped", "playing", "speaking", "sending",
                         "completed", "interrupted", "failed", "consulting", "canceled"]},
        params={"type": ["object", "null"]}, result={"type": ["object", "null"]},
        error={"type": ["object", "null"]}, created_at=NULL_STR, started_at=NULL_STR,
        ended_at=NULL_STR, mode={"const": "attended"},
        consult={"enum": ["ringing", "answered", None],
                 "description": "attended transfers: the consult leg"},
        via={"const": "bridge", "description": "carried out over AMI: the call was in a "
                                               "bridge (a transfer, an agent)"}),
})
SCHEMAS["LiveCalls"] = obj(["calls", "count"], count=INT, calls={"type": "array", "items": obj(
    ["call_uuid", "direction", "status", "from", "to", "since"], call_uuid=STR,
    direction={"enum": ["inbound", "outbound"]},
    status={"enum": ["in-progress", "transferred"]}, to=NULL_STR, since=NULL_STR,
    **{"from": NULL_STR})})
ACTION_PARAMS = [path_param("auth_id", "your account id (GET /api/account)"),
                 path_param("call_uuid", "the call's id")]
ACTION_ERRORS = (400, 403, 404, 409, 415, 422)
CALL_PATH = "/v1/voice/accounts/{auth_id}/calls/{call_uuid}"
PATHS.update({
    "/v1/voice/accounts/{auth_id}/calls": {
        "get": op("Calls in progress that take actions (trunx addition)",
                  {**ok("LiveCalls"), **errors(403)}, tag="call actions",
                  params=ACTION_PARAMS[:1])},
    f"{CALL_PATH}/transfer": {
        "post": op("Transfer the call", {**ok("TransferResponse"), **errors(*ACTION_ERRORS)},
                   json_body("TransferRequest"), "call actions", ACTION_PARAMS)},
    **{f"{CALL_PATH}/transfer/{{transfer_uuid}}/{how}": {
        "post": op(summary, {**ok("TransferFinish"), **errors(403, 404, 409)},
                   tag="call actions", params=ACTION_PARAMS + [
                       path_param("transfer_uuid", "an attended transfer's transfer_uuid")])}
       for how, summary in (("complete", "Complete an attended transfer (trunx)"),
                            ("cancel", "Cancel an attended transfer (trunx)"))},
    f"{CALL_PATH}/record": {
        "post": op("Start recording (both sides)",
                   {**ok("RecordResponse"), **errors(*ACTION_ERRORS)},
                   json_body("RecordRequest"), "call actions", ACTION_PARAMS),
        "delete": op("Stop recording", {**ok("RecordStopped"),
                                        **ok("RecordStopping", "202", "not finished yet"),
                                        **errors(403, 404, 409, 502)},
                     tag="call actions", params=ACTION_PARAMS)},
    f"{CALL_PATH}/play": {
        "post": op("Play audio from a URL or one of the account's audio assets",
                   {**ok("PlayResponse"), **errors(*ACTION_ERRORS, 413, 502, 504)},
                   json_body("PlayRequest"), "call actions", ACTION_PARAMS)},
    f"{CALL_PATH}/speak": {
        "post": op("Speak text", {**ok("SpeakResponse"), **errors(*ACTION_ERRORS, 502, 503)},
                   json_body("SpeakRequest"), "call actions", ACTION_PARAMS)},
    f"{CALL_PATH}/dtmf": {
        "post": op("Send DTMF (200 ms tones, 200 ms gaps)",
                   {**ok("DtmfResponse"), **errors(*ACTION_ERRORS)},
                   json_body("DtmfRequest"), "call actions", ACTION_PARAMS)},
    f"{CALL_PATH}/actions/{{action_uuid}}": {
        "get": op("An action's state (trunx addition)", {**ok("Action"), **errors(403, 404)},
                  tag="call actions",
                  params=ACTION_PARAMS + [path_param("action_uuid", "the *_uuid an action "
                                                                    "answered")])},
    "/v1/voice/accounts/{auth_id}/recordings/{recording_file}": {
        "get": op("Download a recording (trunx addition)", {
            "200": {"description": "the recording",
                    "content": {"audio/mpeg": {"schema": {"type": "string"}},
                                "audio/wav": {"schema": {"type": "string"}}}},
            **errors(403, 404)}, tag="call actions",
            params=[ACTION_PARAMS[0], path_param("recording_file",
                                                 "<recording_uuid>.mp3 or .wav")])},
})


# -- IVR tools: simulate, diagram, stats (admin_api/ivr_tools.py) ---------------------------
OBJ = {"type": "object"}
SCHEMAS.update({
    "SimulateRequest": {"type": "object", "additionalProperties": False,
                        "required": ["inputs"], "properties": {
        "inputs": {"type": "array", "maxItems": 100, "items": {
            "type": "string", "pattern": r"^([0-9*#]{1,10}|timeout|hangup)$"},
            "examples": [["1", "timeout", "2"]]},
        "version": {"type": "integer", "minimum": 1, "maximum": 999_999_999}}},
    "Simulation": obj(["ivr", "version", "inputs", "nodes", "path", "outcome", "reason",
                       "unusedInputs", "assumed"],
                      ivr=STR, version={"type": "integer"},
                      inputs={"type": "array", "items": STR},
                      nodes={"type": "array", "items": OBJ},
                      path={"type": "array", "items": OBJ}, outcome=STR,
                      reason={"type": ["string", "null"]},
                      unusedInputs={"type": "array", "items": STR},
                      assumed={"type": "array", "items": STR}),
    "IvrStats": obj(["ivr", "calls", "outcomes", "nodes", "edges", "funnel"],
                    ivr=STR, version={"type": ["integer", "null"]},
                    since={"type": ["string", "null"]}, until={"type": ["string", "null"]},
                    calls={"type": "integer"}, outcomes=OBJ,
                    nodes={"type": "array", "items": OBJ},
                    edges={"type": "array", "items": OBJ},
                    funnel={"type": "array", "items": OBJ}),
})
# -- Lists: cursor pagination (admin_api/pagination.py); the call list; health and metrics -
CURSOR = {"type": ["string", "null"],
          "description": "pass as ?cursor= for the next page; null on the last page"}
PAGE_PARAMS = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {**INT, "minimum": 1, "maximum": 500},
     "description": "page size (calls and agents default to 50; other lists return "
                    "everything when no limit is given)"},
    {"name": "cursor", "in": "query", "required": False, "schema": STR,
     "description": "the nextCursor of the previous page"}]
for _name in ("AudioList", "IvrList", "DidList", "AgentList", "SuppressionList"):
    SCHEMAS[_name]["properties"]["nextCursor"] = CURSOR
for _path in ("/audio", "/ivr", "/api/dids", "/api/voice/agents", "/api/suppressions"):
    PATHS[_path]["get"]["parameters"] = (
        [p for p in PATHS[_path]["get"].get("parameters", []) if p["name"] != "limit"]
        + PAGE_PARAMS)
    PATHS[_path]["get"]["responses"].update(errors(422))
SCHEMAS["Call"]["properties"].update(
    direction={"enum": ["inbound", "outbound"]}, callId={"type": ["string", "null"]},
    ivr=NULL_STR, ivrVersion={"type": ["integer", "null"]}, outcome=NULL_STR,
    path={"type": "array", "description": "inbound calls: the IVR steps, in order",
          "items": {"type": "object", "required": ["node", "event", "at"], "properties": {
              "node": STR, "event": STR, "at": {**NUM, "description": "seconds from answer"},
              "digits": STR, "audio": STR,
              "heard": {**NUM, "description": "seconds of the prompt heard"},
              "heardShare": {**NUM, "minimum": 0, "maximum": 1}}}})
SCHEMAS["Call"]["properties"]["from"] = {"type": ["string", "null"]}
SCHEMAS["CallList"] = obj(["calls", "count", "nextCursor"], count=INT, nextCursor=CURSOR,
                          calls={"type": "array", "items": ref("Call")})


def _query(name: str, description: str, schema=STR) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


WINDOW = [_query("since", "ISO 8601 time: calls that started at or after it"),
          _query("until", "ISO 8601 time: calls that started before it"),
          _query("version", "only calls (and the tree) of this version",
                 {"type": "integer", "minimum": 1, "maximum": 999_999_999})]
DIAGRAM_PARAMS = [_query("overlay", "stats: label each edge with the calls that took it",
                         {"type": "string", "enum": ["stats"]})] + WINDOW
SVG = {"200": {"description": "the diagram drawn by Graphviz",
               "content": {"image/svg+xml": {"schema": STR},
                           "text/vnd.graphviz": {"schema": STR},
                           "text/plain": {"schema": STR}}}}
PATHS.update({
    "/ivr/{ivr_id}/simulate": {
        "post": op("Walk the IVR with a caller's inputs, as a call would (trunx)",
                   {**ok("Simulation"), **errors(400, 404, 415, 422)},
                   json_body("SimulateRequest"), "ivr", IVR_ID),
    },
    "/ivr/{ivr_id}/diagram.svg": {
        "get": op("The IVR's diagram as SVG (trunx)", {**SVG, **errors(404, 422, 502, 503)},
                  tag="ivr", params=IVR_ID + DIAGRAM_PARAMS),
    },
    "/ivr/{ivr_id}/diagram": {
        "get": op("The IVR's diagram as SVG, Graphviz DOT or Mermaid (trunx)",
                  {**SVG, **errors(404, 422, 502, 503)}, tag="ivr",
                  params=IVR_ID + [_query("format", "svg (default), dot or mermaid",
                                          {"type": "string",
                                           "enum": ["svg", "dot", "mermaid"]})]
                  + DIAGRAM_PARAMS),
    },
    "/ivr/{ivr_id}/stats": {
        "get": op("Per-node analytics from the call records (trunx)",
                  {**ok("IvrStats"), **errors(404, 422)}, tag="ivr", params=IVR_ID + WINDOW),
    },
})
PATHS["/api/voice"]["get"] = op(
    "List calls, inbound and outbound, newest first (trunx addition)",
    {**ok("CallList"), **errors(422)}, tag="voice", params=[
        _query("direction", "inbound or outbound", {"enum": ["inbound", "outbound"]}),
        _query("status", "one call status", CALL_STATUS),
        _query("from", "E.164 caller, %2B for +"), _query("to", "E.164 callee, %2B for +"),
        _query("since", "ISO 8601; calls that started at or after it"),
        _query("until", "ISO 8601; calls that started before it"), *PAGE_PARAMS])
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {**STR, "maxLength": 255},
    "description": "a retry with the same key within 24 h answers the first response and "
                   "never acts twice (docs/api.md)"}
for _path, _ops in PATHS.items():
    if _path == "/api/voice" or _path.endswith("/call") or _path.startswith(CALL_PATH):
        if "post" in _ops:
            _ops["post"]["parameters"] = _ops["post"].get("parameters", []) + [IDEMPOTENCY_KEY]
            _ops["post"]["responses"].update(errors(409, 422))
_PLAIN = {"200": {"description": "OK", "content": {"application/json": {}}},
          "503": {"description": "not ready", "content": {"application/json": {}}}}
PATHS.update({
    "/healthz": {"get": {"summary": "Liveness: the process answers", "tags": ["meta"],
                         "security": [], "responses": {"200": _PLAIN["200"]}}},
    "/readyz": {"get": {"summary": "Readiness: the database and Redis answer",
                        "tags": ["meta"], "security": [], "responses": _PLAIN}},
    "/metrics": {"get": {"summary": "Prometheus metrics (docs/observability.md)",
                         "tags": ["meta"], "security": [], "responses": {"200": {
                             "description": "text exposition format",
                             "content": {"text/plain": {"schema": STR}}}}}},
})


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "trunx admin API", "version": "0.1.0",
             "description": "Audio and IVR APIs as the hosted service documents them, served "
                            "by your own Asterisk. See docs/api.md."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {"schemas": SCHEMAS, "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "tk_live_..."}}},
    "paths": PATHS,
}


@bp.get("/openapi.json")
def document():
    return DOCUMENT
