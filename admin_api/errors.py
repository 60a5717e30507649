"""Errors are data: every 4xx/5xx body is `{"error": {"code", "message", "details"}}`.

    APIError(status, code, message, details)   raised by route code for anything a client did
    MediaError (trunx.media)                   carries its own code and status
    InvalidTree (trunx.ivr.store)              -> 422 invalid-ivr, details = the problems
    werkzeug HTTPException                     routing (404/405), body limits (413), ...
    redis ConnectionError/TimeoutError         -> 503 redis-unavailable
    anything else                              -> 500 internal-error, logged with a traceback

Codes are stable kebab-case ids; clients branch on them, so they never change meaning.
"""
from __future__ import annotations

import logging

import redis.exceptions
from werkzeug.exceptions import HTTPException

from trunx.ivr.store import InvalidTree
from trunx.media.errors import MediaError

log = logging.getLogger("trunx.admin_api")

# werkzeug's status -> our code, for errors raised by routing and request parsing
_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable",
}


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = {} if details is None else details


def body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message,
                      "details": {} if details is None else details}}


def problems(items) -> list[dict]:
    return [p.as_dict() for p in items]


def invalid(field: str, code: str, message: str) -> APIError:
    """A 422 naming one bad request field, shaped like the tree validator's problems."""
    return APIError(422, "invalid-request", message,
                    [{"field": field, "code": code, "message": message}])


def init_app(app) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return body(exc.code, exc.message, exc.details), exc.status

    @app.errorhandler(InvalidTree)
    def _invalid_tree(exc: InvalidTree):
        return body("invalid-ivr", "the IVR definition is not valid",
                    problems(exc.problems)), 422

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http-error")
        details = {}
        if status == 405 and exc.valid_methods:
            details = {"allowed": sorted(exc.valid_methods)}
        if status == 413:
            details = {"max_bytes": app.config["TRUNX"].upload_max_bytes}
        response = exc.get_response()
        response.set_data(app.json.dumps(body(code, exc.description or exc.name, details)))
        response.content_type = "application/json"
        return response

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis_down(exc):
        log.error("redis unavailable: %s", exc)
        return body("redis-unavailable",
                    "the cache is unavailable; what was stored is published again by "
                    "`trunx resync` once Redis is back"), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return body("internal-error", "an unexpected error occurred"), 500

    @app.errorhandler(MediaError)
    def _media(exc: MediaError):
        if exc.status >= 500:
            log.error("media failure %s: %s %s", exc.code, exc.message, exc.details)
        return body(exc.code, exc.message, exc.details), exc.status
