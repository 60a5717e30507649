"""Errors are data: every 4xx/5xx body is `{"error": {"code", "message", "details"}}`.

Route and service code raises trunx's errors (trunx/errors.py), which know nothing of
HTTP; this module is the one place that says which status each answers with:

    TrunxError                  STATUS_BY_KIND (the nearest kind in its classes), unless its
                                code is in STATUS_BY_CODE
    werkzeug HTTPException      routing (404/405), body limits (413), ...: its own status
    redis ConnectionError/TimeoutError   503 redis-unavailable
    database locked/busy        503 database-busy, with Retry-After
    anything else               500 internal-error, logged with a traceback

Codes are stable kebab-case ids; clients branch on them, so they never change meaning.
"""
from __future__ import annotations

import logging

import peewee
import redis.exceptions
from flask import g
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from trunx import errors as trunx_errors

log = logging.getLogger("trunx.admin_api")

STATUS_BY_KIND: dict[type, int] = {
    trunx_errors.InvalidInput: 422,
    trunx_errors.Unsupported: 415,
    trunx_errors.TooLarge: 413,
    trunx_errors.Unauthorized: 401,
    trunx_errors.Forbidden: 403,
    trunx_errors.NotFound: 404,
    trunx_errors.Conflict: 409,
    trunx_errors.TooMany: 429,
    trunx_errors.NotConfigured: 503,
    trunx_errors.Unavailable: 503,
    trunx_errors.UpstreamError: 502,
    trunx_errors.UpstreamTimeout: 504,
    trunx_errors.Internal: 500,
    trunx_errors.TrunxError: 500,    # of no kind: ours to fix, not the client's
}

# Bad input that clients have always been answered 400 for (the body could not be read, or
# a media field is malformed), where the kind's 422 would change what they see.
STATUS_BY_CODE: dict[str, int] = {
    "invalid-json": 400,
    "invalid-text": 400,
    "invalid-voice": 400,
    "unknown-voice": 400,
    "invalid-settings": 400,
    "invalid-provider": 400,
    "invalid-asset-id": 400,
    "invalid-url": 400,
    "url-not-allowed": 400,
}

# werkzeug's status -> our code, for errors raised by routing and request parsing
_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    429: "rate-limited",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable",
}


def status_for(exc: trunx_errors.TrunxError) -> int:
    status = STATUS_BY_CODE.get(exc.code)
    if status is not None:
        return status
    for cls in type(exc).__mro__:   # the nearest kind: UpstreamTimeout before UpstreamError
        status = STATUS_BY_KIND.get(cls)
        if status is not None:
            return status
    raise TypeError(f"{type(exc).__name__} is not a TrunxError")


RETRY_AFTER = 1   # seconds, for 503 database-busy


def _busy(exc: Exception) -> bool:
    text = str(exc).lower()
    # SQLite: "database is locked"/"busy"; PostgreSQL: "canceling statement due to lock
    # timeout" (its lock_timeout, trunx.db, stands for SQLite's busy_timeout)
    return "locked" in text or "busy" in text or "lock timeout" in text


def body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message,
                      "details": {} if details is None else details}}


def init_app(app) -> None:
    def _dependency_failed(name: str) -> None:
        count = app.extensions.get("trunx.dependency_error")   # admin_api/observe.py
        if count is not None:
            count(name).inc()

    @app.errorhandler(trunx_errors.TrunxError)
    def _trunx_error(exc: trunx_errors.TrunxError):
        status = status_for(exc)
        if status >= 500:
            log.error("%s failed: %s %s", type(exc).__name__, exc, exc.details)
        headers = {}
        if status == 429 and isinstance(exc.details, dict) and "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return body(exc.code, exc.message, exc.details), status, headers

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http-error")
        details = {}
        if status == 405 and exc.valid_methods:
            details = {"allowed": sorted(exc.valid_methods)}
        if status == 413:
            # a JSON route's own limit (context.json_body), else the upload limit
            details = {"max_bytes": g.get("body_limit")
                       or app.config["TRUNX"].upload_max_bytes}
        response = exc.get_response()
        response.set_data(app.json.dumps(body(code, exc.description or exc.name, details)))
        response.content_type = "application/json"
        return response

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis_down(exc):
        log.error("redis unavailable: %s", exc)
        _dependency_failed("redis")
        return body("redis-unavailable",
                    "the cache is unavailable; what was stored is published again by "
                    "`trunx resync` once Redis is back"), 503

    @app.errorhandler(MaxConnectionsExceeded)
    @app.errorhandler(peewee.OperationalError)
    def _database_busy(exc):
        # SQLite's "database is locked" (or "busy") after its busy timeout: a writer held
        # the lock too long (or every pooled PostgreSQL connection stayed taken past
        # db_pool_timeout). The client may simply try again; anything else is ours.
        if not isinstance(exc, MaxConnectionsExceeded) and not _busy(exc):
            return _unexpected(exc)
        log.warning("database busy: %s", exc)
        return body("database-busy", "the database is busy; try again shortly",
                    {"retry_after": RETRY_AFTER}), 503, {"Retry-After": str(RETRY_AFTER)}

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        if isinstance(exc, peewee.DatabaseError):
            _dependency_failed("database")
        return body("internal-error", "an unexpected error occurred"), 500
