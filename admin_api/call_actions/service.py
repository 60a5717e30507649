"""Actions on a live call (seed 004), the API's half: check the call, validate, prepare the
media, record the action's state and enqueue it for the engine session holding the call.

    POST .../calls/{call}/transfer|record|play|speak|dtmf   DELETE .../calls/{call}/record

A call takes actions while an engine session holds it and says so in Redis
(`trunx:live:{call}`, see redis_schema): an answered outbound call on the `outbound` route,
or an inbound call in an IVR. The action goes onto the engine's command stream as
{call, action, id, params (JSON)}; the engine's agi_server.calls.actions carries it out and
writes its progress into `trunx:action:{id}`, which GET .../actions/{id} reads.

Play and speak media are fetched or synthesised and staged here, so a bad URL, an audio
file that is not audio or a TTS engine that is not configured is answered at once; the
engine only ever plays a staged file.

Errors are trunx.errors kinds:

    InvalidInput    invalid-request naming the field (errors.invalid)
    Forbidden       forbidden (auth_id is not the calling key's account), number-suppressed
    NotFound        call-not-found (unknown, or another account's call), transfer-not-found
                    (complete/cancel of an unknown transfer)
    Conflict        call-not-in-progress, recording-in-progress, not-recording,
                    call-bridged (attended on a bridged call), not-attended,
                    transfer-not-consulting, consult-not-answered
"""
from __future__ import annotations

import json
import re
import uuid

from admin_api.call_actions import speech
from admin_api.voice.service import check_webhook_url
from trunx import dnc, outbox, phone, recordings, redis_schema
from trunx.errors import Conflict, Forbidden, NotFound, invalid
from trunx.media import asterisk_path, make_stager, pipeline, prepare_upload, tts
from trunx.media.fetch import check_url, fetch_audio
from trunx.models import AudioAsset, Call, Did, Recording, iso, utcnow

KINDS = ("transfer", "record", "record_stop", "play", "speak", "dtmf")
TRANSFER_MODES = ("blind", "attended")
MAX_TEXT = 3000
MAX_DIGITS = 100
MAX_LOOP = 1000
MAX_RECORD_SECONDS = 24 * 3600
DEFAULT_MAX_LENGTH = 14400
DEFAULT_VOICE = "en-US-Standard-A"
DEFAULT_LANGUAGE = "en-US"
_DIGITS = re.compile(r"^[0-9*#]+$")
# the seed's voice names (Google/Azure style): not ElevenLabs voices, not espeak-ng ones
_CLOUD_VOICE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}-[A-Za-z]+-[A-Za-z0-9]+$")
_ASSET_URL = re.compile(r"^/audio/([A-Za-z0-9_-]{1,64})/file$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def new_action_id() -> str:
    return str(uuid.uuid4())


# -- the call --------------------------------------------------------------------------------
def live_call(redis, account_id: str, auth_id: str, call_id: str) -> dict:
    """The live call's Redis hash, or the error to answer: 403 for another account's
    auth_id, 404 for a call this account does not have, 409 for one not in progress."""
    if auth_id != account_id:
        raise Forbidden("forbidden", "auth_id must be the account of the API key",
                        {"auth_id": auth_id})
    live = redis.hgetall(redis_schema.live_call_key(call_id))
    if live:
        if live.get("account") != account_id:
            raise _not_found(call_id)
        status = live.get("status", "in-progress")
        if status != "in-progress":
            raise Conflict("call-not-in-progress", f"call {call_id} is not in progress "
                           f"(status {status})", {"call_uuid": call_id, "status": status})
        return live
    row = Call.get_or_none(Call.id == call_id, Call.account == account_id)
    if row is None:
        raise _not_found(call_id)
    raise Conflict("call-not-in-progress",
                   f"call {call_id} is not in progress (status {row.status})",
                   {"call_uuid": call_id, "status": row.status})


def _not_found(call_id: str) -> NotFound:
    return NotFound("call-not-found", f"no call {call_id!r} in progress in this account",
                    {"call_uuid": call_id})


def live_calls(redis, account_id: str) -> list[dict]:
    """The account's calls an engine session holds now, oldest first (trunx's addition:
    how a client learns an inbound call's id while it runs)."""
    index = redis_schema.live_calls_key(account_id)
    out, stale = [], []
    for call_id in redis.zrange(index, 0, -1):
        live = redis.hgetall(redis_schema.live_call_key(call_id))
        if not live:
            stale.append(call_id)
            continue
        out.append({"call_uuid": call_id, "direction": live.get("direction"),
                    "status": live.get("status", "in-progress"),
                    "from": live.get("from") or None, "to": live.get("to") or None,
                    "since": live.get("since")})
    if stale:
        redis.zrem(index, *stale)
    return out


# -- state and the hand-off ------------------------------------------------------------------
def enqueue(redis, call_id: str, account_id: str, kind: str, params: dict,
            action_id: str | None = None) -> str:
    """Write the action's state (queued) and put it on the engine's command stream."""
    assert kind in KINDS, kind
    action_id = action_id or new_action_id()
    # through the outbox (trunx/outbox.py): the action is in the database (one INSERT)
    # before Redis has it, so a worker killed in between loses nothing, and a Redis that
    # restarts empty gets the action's state back
    state = {"type": kind, "call": call_id, "account": account_id, "status": "queued",
             "params": json.dumps(params), "created_at": iso(utcnow())}
    fields = {"call": call_id, "action": kind, "id": action_id, "params": json.dumps(params)}
    stream = redis_schema.command_stream_for(redis, call_id)     # the engine holding it
    entry = outbox.write(outbox.COMMAND, action_id, call_id,
                         outbox.command_payload(fields, state, stream=stream))
    outbox.deliver(redis, entry)
    return action_id


def action_json(redis, account_id: str, call_id: str, action_id: str) -> dict | None:
    state = redis.hgetall(redis_schema.action_key(action_id))
    if not state or state.get("account") != account_id or state.get("call") != call_id:
        return None
    params = _load(state.get("params"))
    if state.get("speech") and isinstance(params, dict):     # every sentence rendered
        params["duration"] = _load(state["speech"])["duration"]
    out = {"action_uuid": action_id, "type": state["type"], "call_uuid": call_id,
           "status": state.get("status"), "params": params,
           "result": _load(state.get("result")), "error": _load(state.get("error")),
           "created_at": state.get("created_at"), "started_at": state.get("started_at"),
           "ended_at": state.get("ended_at")}
    for extra in ("mode", "via"):        # attended transfers; actions run over AMI (bridged)
        if extra == "mode" and (out["params"] or {}).get("mode"):
            out["mode"] = out["params"]["mode"]
            out["consult"] = state.get("consult")
        elif extra == "via" and state.get("via"):
            out["via"] = state["via"]
    return out


def _load(text):
    return json.loads(text) if text else None


# -- the actions -----------------------------------------------------------------------------
def transfer(redis, config, account_id: str, call_id: str, data: dict,
             live: dict | None = None) -> dict:
    live = live or {}
    to = data.get("to")
    if not phone.is_e164(to):
        raise invalid("to", "invalid-number", "to must be an E.164 number like +14155559999")
    caller_id = data.get("caller_id")
    if caller_id is not None:
        if not phone.is_e164(caller_id):
            raise invalid("caller_id", "invalid-number",
                          "caller_id must be an E.164 number like +14155551234")
        if not Did.select().where(Did.number == caller_id, Did.account == account_id).exists():
            raise invalid("caller_id", "unknown-did",
                          f"{caller_id} is not one of this account's numbers (see /api/dids)")
    answer_url = check_webhook_url(data.get("answer_url"), "answer_url",
                                   allow_private=config.webhook_allow_private)
    mode = data.get("mode", "blind")
    if mode not in TRANSFER_MODES:
        raise invalid("mode", "invalid-value", "mode must be blind or attended")
    if dnc.is_suppressed(account_id, to, redis):
        raise Forbidden("number-suppressed", f"{to} is on this account's do-not-call list",
                        {"field": "to", "number": to})
    if mode == "attended" and live.get("bridged"):
        raise Conflict("call-bridged", "the call is bridged (in a transfer or an agent "
                       "bridge): an attended transfer needs it out of the bridge; a blind "
                       "transfer works", details={"call_uuid": call_id, "mode": mode})
    params = {"to": to, "caller_id": caller_id, "answer_url": answer_url}
    if mode == "attended":
        params["mode"] = mode
    action_id = enqueue(redis, call_id, account_id, "transfer", params)
    if mode == "attended":
        return {"transfer_uuid": action_id, "status": "consulting", "to": to,
                "mode": mode}
    return {"transfer_uuid": action_id, "status": "transferring", "to": to}


def finish_transfer(redis, account_id: str, call_id: str, transfer_id: str,
                    how: str) -> dict:
    """POST .../transfer/{transfer_uuid}/complete|cancel for an attended transfer in its
    consult: the engine's consult loop takes it (agi_server.calls.attended)."""
    state = redis.hgetall(redis_schema.action_key(transfer_id))
    if not state or state.get("account") != account_id or state.get("call") != call_id \
            or state.get("type") != "transfer":
        raise NotFound("transfer-not-found", f"no transfer {transfer_id!r} on this call",
                           details={"transfer_uuid": transfer_id})
    if (_load(state.get("params")) or {}).get("mode") != "attended":
        raise Conflict("not-attended", "only an attended transfer is completed or canceled; "
                       "a blind one goes through by itself",
                       details={"transfer_uuid": transfer_id})
    status = state.get("status")
    if status not in ("queued", "transferring", "consulting"):
        raise Conflict("transfer-not-consulting", f"the transfer is {status}, not consulting",
                       details={"transfer_uuid": transfer_id, "status": status})
    if how == "complete" and state.get("consult") != "answered":
        raise Conflict("consult-not-answered", "the target has not answered the consult "
                       "call yet; cancel it, or complete once it answers",
                       details={"transfer_uuid": transfer_id,
                                "consult": state.get("consult") or "ringing"})
    entry = outbox.write(outbox.COMMAND, f"{transfer_id}-{how}", call_id,
                         outbox.command_payload({"call": call_id, "action": f"transfer_{how}",
                                                 "id": transfer_id, "params": "{}"},
                                                stream=redis_schema.command_stream_for(
                                                    redis, call_id)))
    outbox.deliver(redis, entry)
    return {"transfer_uuid": transfer_id,
            "status": "completing" if how == "complete" else "canceling"}


def record(redis, config, account_id: str, call_id: str, data: dict) -> dict:
    fmt = data.get("format", "mp3")
    if fmt not in ("mp3", "wav"):
        raise invalid("format", "invalid-value", "format must be mp3 or wav")
    max_length = data.get("max_length", DEFAULT_MAX_LENGTH)
    if (isinstance(max_length, bool) or not isinstance(max_length, int)
            or not 1 <= max_length <= MAX_RECORD_SECONDS):
        raise invalid("max_length", "out-of-range",
                      f"max_length must be an integer number of seconds, 1 to "
                      f"{MAX_RECORD_SECONDS}")
    trim = data.get("trim_silence", False)
    if not isinstance(trim, bool):
        raise invalid("trim_silence", "invalid-type", "trim_silence must be true or false")
    if recordings.active_for_call(call_id) is not None:
        raise Conflict("recording-in-progress", "this call is already being recorded; stop "
                       "that recording first (DELETE .../record)",
                       {"call_uuid": call_id})
    rec = Recording.create(id=new_action_id(), account=account_id, call_id=call_id,
                           format=fmt, max_length=max_length, trim_silence=trim)
    try:
        enqueue(redis, call_id, account_id, "record",
                {"format": fmt, "max_length": max_length, "trim_silence": trim},
                action_id=rec.id)
    except Exception:
        rec.delete_instance()
        raise
    return {"recording_uuid": rec.id, "status": "recording", "format": fmt}


def stop_recording(redis, account_id: str, call_id: str) -> Recording:
    """Ask the engine to stop the call's recording; returns its row (still active: the
    caller waits for the engine to finish it)."""
    rec = recordings.active_for_call(call_id)
    if rec is None or rec.account_id != account_id:
        raise Conflict("not-recording", "this call has no recording in progress",
                       {"call_uuid": call_id})
    enqueue(redis, call_id, account_id, "record_stop", {"recording": rec.id})
    return rec


def stopped_json(rec: Recording, base_url: str) -> dict:
    """The seed's stop answer; `duration` is whole seconds as the seed shows it,
    `duration_ms` (trunx's addition) the measured length."""
    seconds = rec.duration or 0.0
    return {"recording_uuid": rec.id, "status": "stopped", "url": recordings.url(base_url, rec),
            "duration": round(seconds), "duration_ms": round(seconds * 1000)}


def play(redis, config, account_id: str, call_id: str, data: dict,
         base_url: str = "") -> dict:
    """`url` (fetched, staged for this action) or one of the account's audio assets:
    `audio_id`, or the asset's own `url` as GET /audio gives it. An asset is played from
    the file staged when it was made: no fetch, and the engine never removes it."""
    url, audio_id = data.get("url"), data.get("audio_id")
    if (url is None) == (audio_id is None):
        field = "url" if url is None else "audio_id"
        raise invalid(field, "required" if url is None else "conflict",
                          "give exactly one of url (an http(s) URL of mp3 or wav audio) and "
                          "audio_id (one of this account's audio assets)")
    loop = data.get("loop", 1)
    if isinstance(loop, bool) or not isinstance(loop, int) or not 0 <= loop <= MAX_LOOP:
        raise invalid("loop", "out-of-range",
                          f"loop must be an integer 0 (until stopped) to {MAX_LOOP}")
    if url is not None:
        if not isinstance(url, str) or not url:
            raise invalid("url", "required",
                              "url is required: an http(s) URL of mp3 or wav audio")
        own = _own_asset_id(url, base_url)
        if own is None:
            return _play_url(redis, config, account_id, call_id, url, loop)
        asset = _asset(account_id, own, "url")
    else:
        if not isinstance(audio_id, str) or not audio_id:
            raise invalid("audio_id", "invalid-type", "audio_id must be an audio asset id")
        asset = _asset(account_id, audio_id, "audio_id")
    action_id = enqueue(redis, call_id, account_id, "play", {
        "file": asterisk_path(asset.id, config), "audio_id": asset.id, "loop": loop,
        "duration": round(asset.duration_seconds, 3)})
    out = {"play_uuid": action_id, "status": "playing"}
    return {**out, "url": url} if url is not None else {**out, "audio_id": asset.id}


def _own_asset_id(url: str, base_url: str) -> str | None:
    """The asset id if `url` is this API's GET /audio/{id}/file URL."""
    if not base_url or not url.startswith(base_url.rstrip("/") + "/audio/"):
        return None
    match = _ASSET_URL.fullmatch(url[len(base_url.rstrip("/")):].split("?", 1)[0])
    return match.group(1) if match else None


def _asset(account_id: str, audio_id: str, field: str) -> AudioAsset:
    asset = AudioAsset.get_or_none(AudioAsset.id == audio_id, AudioAsset.account == account_id)
    if asset is None:         # as the IVR trees and caller_id say it: 422, naming the field
        raise invalid(field, "unknown-audio",
                          f"{audio_id!r} is not one of this account's audio assets "
                          "(see GET /audio)")
    return asset


def _play_url(redis, config, account_id, call_id, url, loop) -> dict:
    check_url(url, config.fetch_allow_private)       # refuse early, before any download
    blob, _ = fetch_audio(url, max_bytes=config.fetch_max_bytes, timeout=config.fetch_timeout,
                          allow_private=config.fetch_allow_private)
    rendered = prepare_upload(blob, config)
    action_id = new_action_id()
    params = _stage(rendered, action_id, config)
    enqueue(redis, call_id, account_id, "play", {**params, "loop": loop, "url": url},
            action_id=action_id)
    return {"play_uuid": action_id, "status": "playing", "url": url}


def speak(redis, config, account_id: str, call_id: str, data: dict) -> dict:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise invalid("text", "required", "text is required and must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise invalid("text", "too-long", f"text is longer than {MAX_TEXT} characters")
    voice = data.get("voice", DEFAULT_VOICE)
    language = data.get("language", DEFAULT_LANGUAGE)
    for name, value in (("voice", voice), ("language", language)):
        if not isinstance(value, str) or not 0 < len(value) <= 100:
            raise invalid(name, "invalid-type", f"{name} must be a string")
    if not _LANGUAGE.fullmatch(language):
        raise invalid("language", "invalid-value", "language is a code like en-US")
    engine = data.get("engine")
    if engine is not None and engine not in ("standard", "neural"):
        raise invalid("engine", "invalid-value", "engine must be standard or neural")
    # The seed's default is neural: ElevenLabs with its key, else the local neural voice
    # (English only) if its extra is installed, else espeak-ng; neural asked for by name
    # with neither is 503 provider-not-configured.
    provider = pipeline.pick_provider(engine, config, language)
    # sentence by sentence: the call hears the first while the rest render (speech.py)
    action_id = new_action_id()
    params, used, go = speech.start(redis, config, action_id, text,
                                    tts_voice(provider, voice, language, config), provider)
    enqueue(redis, call_id, account_id, "speak",
            {**params, "engine": provider, "voice": used}, action_id=action_id)
    go()
    return {"speak_uuid": action_id, "status": "speaking", "text": text}


def tts_voice(provider: str, voice: str, language: str, config) -> str | None:
    """The seed names voices the way cloud TTS services do (en-US-Neural-Jenny). espeak-ng
    speaks a language: the voice if it is an espeak-ng voice, else the language, else the
    default. ElevenLabs gets the voice unless it is such a cloud name (then its default)."""
    if provider == "neural":
        if not config.elevenlabs_api_key:
            return None      # the local neural engine speaks with its one voice
        return None if _CLOUD_VOICE.fullmatch(voice) else voice
    for candidate in (voice, language.lower(), language.split("-")[0].lower()):
        try:
            return tts.check_voice(candidate)
        except Exception:   # MediaError: not an espeak-ng voice; try the next
            continue
    return config.default_voice


def dtmf(redis, config, account_id: str, call_id: str, data: dict) -> dict:
    digits = data.get("digits")
    if not isinstance(digits, str) or not _DIGITS.fullmatch(digits) or len(digits) > MAX_DIGITS:
        raise invalid("digits", "invalid-digits",
                      f"digits must be 1 to {MAX_DIGITS} of 0-9, * and #")
    action_id = enqueue(redis, call_id, account_id, "dtmf", {"digits": digits})
    return {"dtmf_uuid": action_id, "status": "sent", "digits": digits}


def _stage(rendered, action_id: str, config) -> dict:
    """Stage the rendered WAV as act_<hex>; the engine removes it when the action ends."""
    name = "act_" + action_id.replace("-", "")
    make_stager(config).put(rendered.path, name)
    return {"file": asterisk_path(name, config), "name": name,
            "duration": round(rendered.duration_seconds, 3)}


ROUTES = {"transfer": transfer, "record": record, "play": play, "speak": speak, "dtmf": dtmf}
