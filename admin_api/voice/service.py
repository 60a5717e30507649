"""Placing outbound calls, the API's half: validate a request, store the Call row, enqueue it
for the engine; ask for a hangup; where a queued call stands. The JSON form of a call and
what the engine shares (status names, time conversions, webhook secrets) stay in
trunx/calls.py.

Placing a call writes the Call row (the record) and then enqueues its id for the engine on
a Redis sorted set (`trunx:originate`); the engine's dialer originates it, paced, and its
tracker moves the status along from AMI events (agi_server/ami/dialer.py, tracker.py).

Errors are trunx.errors kinds:

    InvalidInput    invalid-request, a field is wrong (errors.invalid: details name the
                    field, and its code says how)
    Forbidden       number-suppressed (the `to` number is on the DNC list)
    NotConfigured   ultravox-not-configured
    Unavailable     ai-bridge-unavailable
"""
from __future__ import annotations

import contextlib
import importlib.util
import re
import secrets
import threading

import peewee

from admin_api import quotas
from admin_api.voice.amd import amd_settings
from trunx import db, dnc, group_commit, outbox, phone, redis_schema, ultravox_tools, url_policy
from trunx.calls import ensure_webhook_secret, parse_duration
from trunx.errors import Forbidden, NotConfigured, Unavailable, invalid
from trunx.models import Account, Call, Did, new_id, new_uuid, utcnow

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_TOOL_KEYS = {"modelToolName", "description", "dynamicParameters", "http"}

AI_KEYS = ("systemPrompt", "model", "voice", "tools", "firstSpeaker", "temperature")

# "": the number, then the account id (SQL built once: every POST /api/voice asks)
_DID_OWNED = db.Prepared(lambda: Did.select(Did.number).where(Did.number == "",
                                                             Did.account == ""))


_INSERT_CALL = db.PreparedInsert(Call)


def check_metadata(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("metadata", "invalid-type", "metadata must be an object")
    if len(value) > 50:
        raise invalid("metadata", "too-many", "metadata holds at most 50 keys")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"metadata.{key}", "invalid-type",
                          "metadata values must be strings")
        if len(key) > 64 or len(item) > 500:
            raise invalid(f"metadata.{key}", "too-long",
                          "metadata keys are at most 64 characters, values 500")
    return dict(value)


def check_webhook_url(value, field: str = "webhookUrl", *,
                      allow_private: bool = False) -> str | None:
    """A URL trunx will POST to (or hand Ultravox to call): well-formed http(s), and not
    resolving to loopback, private or link-local addresses unless the operator allows
    them (`webhook_allow_private`); the engine checks it again when it sends."""
    if value is None:
        return None
    try:
        return url_policy.check_input(value, allow_private, credentials=True)
    except url_policy.UrlRefused as exc:
        message = (f"{field} must be an http or https URL" if exc.code == "invalid-url"
                   else f"{field}: {exc.message}")
        raise invalid(field, exc.code, message) from None


def _string(ai: dict, key: str, max_len: int, required: bool = False) -> None:
    value = ai.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise invalid(key, "required" if value is None else "invalid-type",
                      f"{key} must be a non-empty string")
    if len(value) > max_len:
        raise invalid(key, "too-long", f"{key} is longer than {max_len} characters")


def _check_tool(i: int, tool, allow_private: bool) -> None:
    where = f"tools[{i}]"
    if not isinstance(tool, dict):
        raise invalid(where, "invalid-type", f"{where} must be an object")
    for key in sorted(set(tool) - _TOOL_KEYS):
        raise invalid(f"{where}.{key}", "unknown-field",
                      f"unknown tool field {key!r}; expected {', '.join(sorted(_TOOL_KEYS))}")
    name = tool.get("modelToolName")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise invalid(f"{where}.modelToolName", "required",
                      "modelToolName is required: 1-64 of A-Z a-z 0-9 _ -")
    if not isinstance(tool.get("description"), str) or not tool["description"].strip():
        raise invalid(f"{where}.description", "required",
                      "description is required and must be a non-empty string")
    params = tool.get("dynamicParameters")
    if params is not None and (not isinstance(params, list)
                               or not all(isinstance(p, dict) for p in params)):
        raise invalid(f"{where}.dynamicParameters", "invalid-type",
                      "dynamicParameters must be an array of objects")
    ultravox_tools.check_inline_http(where, tool)   # Ultravox refuses a tool without it
    http = tool["http"]
    if not isinstance(http, dict) or set(http) - {"baseUrlPattern", "httpMethod"}:
        raise invalid(f"{where}.http", "invalid-type",
                      "http must be an object with baseUrlPattern and httpMethod")
    if http.get("baseUrlPattern") is None:
        raise invalid(f"{where}.http.baseUrlPattern", "required",
                      "an http tool needs baseUrlPattern, the URL Ultravox calls")
    check_webhook_url(http.get("baseUrlPattern"), f"{where}.http.baseUrlPattern",
                      allow_private=allow_private)
    method = http.get("httpMethod")
    if method is not None and method not in _HTTP_METHODS:
        raise invalid(f"{where}.http.httpMethod", "invalid-value",
                      f"httpMethod must be one of {', '.join(_HTTP_METHODS)}")


def check_ai(ai: dict, *, allow_private: bool = False) -> dict:
    """The AI config of a call, checked. The seed's keys (AI_KEYS) are validated; any other
    key (an agent's firstMessage, language, ultravoxAgentId, ...) is stored as given."""
    if not isinstance(ai, dict):
        raise invalid("ai", "invalid-type", "ai must be an object")
    _string(ai, "systemPrompt", 20000, required=True)
    # only the template variables trunx fills (the outgoing flow carries them, docs/ai.md)
    ultravox_tools.check_template("systemPrompt", ai["systemPrompt"])
    _string(ai, "model", 200)
    _string(ai, "voice", 200)
    first = ai.get("firstSpeaker")
    if first is not None and first not in ("agent", "user"):
        raise invalid("firstSpeaker", "invalid-value",
                      'firstSpeaker must be "agent" or "user"')
    temp = ai.get("temperature")
    if temp is not None and (isinstance(temp, bool) or not isinstance(temp, (int, float))
                             or not 0 <= temp <= 1):
        raise invalid("temperature", "out-of-range", "temperature must be a number 0 to 1")
    tools = ai.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or len(tools) > 50:
            raise invalid("tools", "invalid-type", "tools must be an array (at most 50)")
        for i, tool in enumerate(tools):
            _check_tool(i, tool, allow_private)
    return {k: v for k, v in ai.items() if v is not None}


def ai_available(config) -> None:
    """NotConfigured or Unavailable unless AI calls can run here: a key, and the engine's
    bridge."""
    if not config.ultravox_api_key:
        raise NotConfigured(
            "ultravox-not-configured",
            "AI calls need an Ultravox API key: set ULTRAVOX_API_KEY (or ultravox_api_key "
            "in the [trunx] config file)", details={"setting": "ULTRAVOX_API_KEY"})
    if importlib.util.find_spec("agi_server.ai.bridge") is None:
        raise Unavailable("ai-bridge-unavailable",
                          "this trunx build has no AI bridge (agi_server/ai/bridge.py)")


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def place_call(store, account, from_number, to_number, *, ai=None, agent_id=None,
               webhook_url=None, max_duration=None, metadata=None, detection=None,
               agent_drop=None, config) -> Call:
    """Validate, check the DNC list, store the call and enqueue it for the engine.

    store        the Store: the Call row goes to its database, the engine's queue to its Redis
    account      an Account or its id
    from_number  E.164, one of the account's DIDs (field "from")
    to_number    E.164 (field "to"); refused with Forbidden("number-suppressed") if it is
                 on the account's DNC list
    ai           None for a plain call, else the AI config: systemPrompt (required), model,
                 voice, tools, firstSpeaker, temperature as in the seed (validated), plus any
                 other key, stored as given. Needs ULTRAVOX_API_KEY and the engine's AI
                 bridge, else NotConfigured / Unavailable. The engine hands the answered call to
                 agi_server.ai.bridge.run_ai_call(ch, call_row_dict, config).
    agent_id     stored on the call (agent calls)
    webhook_url  http(s) URL for status webhooks; else the account's default, if any
    max_duration seconds (number) or "300s"; the engine hangs up that long after answer
    metadata     object of string values
    detection    the request's machineDetection fields (admin_api.voice.amd), if any
    agent_drop   an agent's own voicemail_drop (used when the request names none)
    config       the trunx Config

    Returns the Call row (status "initiated", direction "outbound", provider "asterisk",
    or "ultravox" for AI calls; call.call_sid is the seed's callId). Raises InvalidInput
    (invalid-request naming the field), Forbidden, NotConfigured, Unavailable; Redis errors
    propagate, and then no row is left behind. Nothing is written unless every check passed.
    """
    account_id = account.id if isinstance(account, Account) else account
    for field, number in (("from", from_number), ("to", to_number)):
        if not phone.is_e164(number):
            raise invalid(field, "invalid-number",
                          f"{field} must be an E.164 number like +19495551234")
    if not _DID_OWNED.rows(store.db, from_number, account_id):
        raise invalid("from", "unknown-did",
                      f"{from_number} is not one of this account's numbers (see /api/dids)")
    seconds = parse_duration(max_duration)
    metadata = check_metadata(metadata)
    webhook_url = check_webhook_url(webhook_url, allow_private=config.webhook_allow_private)
    if ai is not None:
        ai = check_ai(ai, allow_private=config.webhook_allow_private)
        ultravox_tools.check_metadata_keys("metadata", metadata)
        ai_available(config)
    quotas.check_calls(account_id, config)
    # last of the checks: a {text} drop is rendered and staged (named by its content)
    amd = amd_settings(detection or {}, account_id, config, agent_drop=agent_drop)
    # SQLite alone: it is the record (written first, trunx/dnc.py), and its index probe was
    # made even when Redis answered no; Redis's SISMEMBER added a round trip a call
    if dnc.is_suppressed(account_id, to_number):
        raise Forbidden("number-suppressed", f"{to_number} is on this account's do-not-call "
                        "list", {"field": "to", "number": to_number})
    # the ids are drawn here, not with the lock held: each draw is a system call that lets
    # go of the GIL, and the lock's holder then waits for another thread to give it back
    call_id, call_sid, entry_id = new_uuid(), new_call_sid(), new_id("obx")

    def write():     # in a turn of the writer lock, in a transaction (trunx/group_commit)
        now = utcnow()
        call = _INSERT_CALL.create(
            store.db, id=call_id, call_sid=call_sid, account=account_id,
            direction="outbound", from_number=from_number, to_number=to_number, status="initiated",
            provider="ultravox" if ai is not None else "asterisk", ai=ai, agent_id=agent_id,
            webhook_url=webhook_url, max_duration=seconds, metadata=metadata, amd=amd,
            created_at=now, queued_at=now)
        if webhook_url:
            ensure_webhook_secret(account_id)
        # the queue entry is owed from this commit on: if this worker dies before Redis
        # has it, the engine's outbox sweep queues it (trunx/outbox.py)
        entry = outbox.write(outbox.ORIGINATE, call.id, call.id,
                             outbox.originate_payload(call.id, account_id), entry_id=entry_id)
        return call, entry

    call, _ = _placements(store).save(write)
    return call


def _placements(store) -> group_commit.GroupCommit:
    """The store's group of call placements: the calls placed at once in this worker are
    stored in one transaction and queued in one Redis round trip (a campaign's burst)."""
    group = store.__dict__.get("call_placements")
    if group is None:
        with _GROUP_MADE:
            group = store.__dict__.setdefault("call_placements", group_commit.GroupCommit(
                store, lambda placed: _queued(store, placed), lock=lambda: _write_lock(store)))
    return group


_GROUP_MADE = threading.Lock()


def _queued(store, placed: list) -> list:
    """A turn's calls (call, entry), committed: queued for the engine, each at most once
    (trunx/outbox.py). A call Redis did not take is deleted with its entry and gets
    Redis's error (503): nothing of it is left."""
    try:
        results = outbox.apply_many(store.redis, [entry for _, entry in placed])
    except Exception as exc:
        results = [exc] * len(placed)
    errors = []
    for (call, entry), result in zip(placed, results, strict=True):
        if isinstance(result, Exception):
            entry.delete_instance()
            call.delete_instance()
        errors.append(result if isinstance(result, Exception) else None)
    return errors


def _write_lock(store):
    """SQLite: the store's writer lock around the insert, so a burst's writers wait their
    turn in the kernel instead of oversleeping in SQLite's busy handler (trunx/store.py;
    the campaign bench's p99). PostgreSQL takes concurrent inserts itself: no lock."""
    if isinstance(store.db, peewee.SqliteDatabase):
        return store.writer
    return contextlib.nullcontext()


def queue_position(redis, call_id: str) -> int | None:
    """1 for the next call the engine will place; None once it left the queue."""
    rank = redis.zrank(redis_schema.ORIGINATE_QUEUE, call_id)
    return None if rank is None else rank + 1


def request_hangup(redis, call_id: str) -> None:
    """Ask the engine to end the call (queued: never placed; ringing or live: hung up),
    through the outbox: the request is in the database (one INSERT) before Redis has it."""
    entry = outbox.write(outbox.COMMAND, f"hangup-{new_uuid()}", call_id,
                         outbox.command_payload({"call": call_id, "action": "hangup"},
                                                stream=redis_schema.command_stream_for(
                                                    redis, call_id)))
    outbox.deliver(redis, entry)


def get_owned(account_id: str, call_id: str) -> Call | None:
    return Call.get_or_none(Call.id == call_id, Call.account == account_id)
