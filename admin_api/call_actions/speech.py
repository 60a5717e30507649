"""Speak, sentence by sentence: the first sentence is rendered before the API answers, the
rest while the call already hears it.

A speak of several sentences renders the first one (errors of the provider or the voice
surface here, as the answer's 4xx/5xx), stages it and queues the action with
`parts: n` and `stream: <Redis list>`; a background thread renders the others in order,
stages each and pushes `{file, name, duration}` onto the list (or `{error}` and stops). The
engine plays part 0 and pops the next as each one ends (agi_server.calls.speech). Piper
renders a sentence in a fraction of its playing time, so the next part is normally waiting.

When the speak ends early (a key, another action, the call's end) the engine sets the stop
key: the thread renders nothing more, and a part it staged anyway is removed by whichever
side sees it last. When everything is rendered the action's record gets `speech`
{duration, parts}, which GET shows as the speak's whole duration.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

from admin_api import observe
from trunx import redis_schema
from trunx.media import asterisk_path, make_stager, pipeline
from trunx.media.sentences import split_sentences

log = logging.getLogger(__name__)

_renderers = ThreadPoolExecutor(4, thread_name_prefix="trunx-speak")


def part_name(action_id: str, index: int) -> str:
    return f"act_{action_id.replace('-', '')}" + (f"_{index}" if index else "")


def stage(rendered, action_id: str, index: int, config) -> dict:
    name = part_name(action_id, index)
    make_stager(config).put(rendered.path, name)
    return {"file": asterisk_path(name, config), "name": name,
            "duration": round(rendered.duration_seconds, 3)}


def start(redis, config, action_id: str, text: str, voice, provider: str):
    """Render and stage the first sentence. Returns (params, the voice used, go): `go()`
    starts rendering the rest, once the action is queued."""
    count = len(split_sentences(text))
    pieces = pipeline.stream_tts(text, voice, provider, None, config)
    first = next(pieces)
    counted = observe.tts_counter()
    counted(first)
    params = stage(first, action_id, 0, config)

    def go() -> None:
        if count > 1:
            _renderers.submit(_render_rest, redis, config, action_id, pieces,
                              first.duration_seconds, counted)

    if count > 1:
        params.update(parts=count, stream=redis_schema.speech_parts_key(action_id))
    return params, first.voice, go


def _render_rest(redis, config, action_id: str, pieces, total: float, counted) -> None:
    key = redis_schema.speech_parts_key(action_id)
    stop = redis_schema.speech_stop_key(action_id)
    index = 0
    try:
        for index, piece in enumerate(pieces, 1):
            if redis.exists(stop):
                return
            counted(piece)
            part = stage(piece, action_id, index, config)
            total += piece.duration_seconds
            pipe = redis.pipeline(transaction=True)
            pipe.rpush(key, json.dumps(part))
            pipe.expire(key, redis_schema.SPEECH_TTL)
            pipe.execute()
            if redis.exists(stop):          # ended while this part was being staged
                _remove(config, part["name"])
                redis.delete(key)
                return
        redis.hset(redis_schema.action_key(action_id), "speech",
                   json.dumps({"duration": round(total, 3), "parts": index + 1}))
    except Exception as exc:
        log.warning("speak %s: part %d not rendered: %s", action_id, index, exc)
        code = getattr(exc, "code", "render-failed")
        try:
            redis.rpush(key, json.dumps({"error": code, "message": str(exc)[:300]}))
            redis.expire(key, redis_schema.SPEECH_TTL)
        except Exception:   # Redis is gone too: the engine's wait for the part times out
            log.exception("speak %s: the failure could not be told", action_id)


def _remove(config, name: str) -> None:
    try:
        make_stager(config).delete(name)
    except Exception as exc:
        log.warning("staged %s not removed: %s", name, exc)
