"""`Idempotency-Key` on the POSTs that act (place a call, call an agent, act on a live call):
a retry with the same key within 24 h answers the first response and never acts twice.

    first request    SET trunx:idem:{account}:{sha256(key)} {pending, fp} NX EX 24h
                     -> wins the reservation, runs the view, stores {done, status, body}
    a retry          finds {done}: the stored response, with `Idempotent-Replayed: true`
    a concurrent     finds {pending}: waits (up to `IDEMPOTENCY_WAIT`, 10 s) for the first to
      retry          finish and answers its response; still pending then: 409
                     `idempotency-key-in-progress` (a retry later gets the response)
    another request  same key, another path or body: 422 `idempotency-key-reused`
      with the key

The reservation is one atomic SET NX, so of any number of concurrent requests with a key
exactly one runs the view. A view that fails (any 4xx/5xx, or an exception) did not act
(place_call and the action services write nothing unless every check passed), so its
reservation is dropped and a retry runs again: the client may fix and resend. If the API
process dies while a request holds the reservation, the key stays pending and answers 409
for its 24 h rather than risk acting twice; the client can see what happened in
GET /api/voice and retry with a new key.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time

from flask import current_app, make_response, request

from admin_api import context as ctx
from trunx import redis_schema
from trunx.errors import Conflict, InvalidInput, invalid

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY = 255
WAIT = 10.0            # seconds a concurrent retry waits for the first request's answer
_POLL = 0.05


def idempotent(view):
    """Decorate a POST view: with the header, the rules above; without it, no change."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= MAX_KEY or not key.isprintable() or not key.isascii():
            raise invalid(HEADER, "invalid-value",
                          f"{HEADER} must be 1 to {MAX_KEY} printable ASCII characters")
        redis = ctx.redis()
        name = redis_schema.idempotency_key(ctx.account_id(),
                                            hashlib.sha256(key.encode()).hexdigest())
        fp = _fingerprint()
        deadline = time.monotonic() + current_app.config.get("IDEMPOTENCY_WAIT", WAIT)
        while True:
            pending = json.dumps({"state": "pending", "fp": fp, "at": time.time()})
            if redis.set(name, pending, nx=True, ex=redis_schema.IDEMPOTENCY_TTL):
                return _run_reserved(redis, name, fp, view, args, kwargs)
            raw = redis.get(name)
            if raw is None:        # the holder failed and let go in between: try again
                continue
            held = json.loads(raw)
            if held["fp"] != fp:
                raise InvalidInput(
                    "idempotency-key-reused",
                    f"this {HEADER} was used for another request (a different path or "
                    "body); use a new key for a new request", {"field": HEADER})
            if held["state"] == "done":
                return _replay(held)
            if time.monotonic() >= deadline:
                raise Conflict("idempotency-key-in-progress",
                               f"a request with this {HEADER} is still being processed; "
                               "retry later for its response", {"field": HEADER})
            time.sleep(_POLL)

    return wrapper


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.get_data(cache=True)):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _run_reserved(redis, name: str, fp: str, view, args, kwargs):
    try:
        response = make_response(view(*args, **kwargs))
    except BaseException:
        redis.delete(name)         # it did not act: a retry may
        raise
    if response.status_code >= 400 or response.is_streamed:
        redis.delete(name)
        return response
    done = {"state": "done", "fp": fp, "status": response.status_code,
            "body": response.get_data(as_text=True), "type": response.mimetype}
    redis.set(name, json.dumps(done), xx=True, keepttl=True)
    return response


def _replay(held: dict):
    response = current_app.response_class(held["body"], status=held["status"],
                                          mimetype=held["type"])
    response.headers[REPLAYED_HEADER] = "true"
    return response
