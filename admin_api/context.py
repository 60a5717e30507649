"""What a request handler needs, taken from the app it runs in (never a module global):
the config, the store (database, writer lock, Redis), the authenticated account, the
parsed JSON body."""
from __future__ import annotations

import json
import math
import re

from flask import current_app, g, request

from admin_api import validation
from trunx import patterns
from trunx.errors import InvalidInput, Unsupported, invalid, problem

# A JSON body's limits. The largest legitimate bodies (an IVR of 500 nodes, a 20,000
# character prompt with tools) are far below 1 MiB; anything bigger is refused with 413
# before it is read (uploads keep their own, larger limit: MAX_CONTENT_LENGTH).
JSON_MAX_BYTES = 1024 * 1024
JSON_MAX_DEPTH = 32      # an IVR tree is 4 deep, an AI tool's parameter schema ~10


def config():
    return current_app.config["TRUNX"]


def store():
    """The app's Store (trunx/store.py), made once by create_app."""
    return current_app.extensions["trunx.store"]


def redis():
    return current_app.extensions["trunx.store"].redis


def account_id() -> str:
    return g.account.id


def base_url() -> str:
    """Where clients reach this API: configured, else what the request came in on."""
    return (config().public_base_url or request.host_url).rstrip("/")


def json_body(allowed: set[str] | None = None, *, schema: str | None = None) -> dict:
    """The request's JSON object; 415 if it isn't JSON, 413 past JSON_MAX_BYTES, 400 if it
    doesn't parse (or nests too deep), 422 naming any field outside `allowed` (a typo is
    better caught than ignored). With `schema`, the body is checked against that schema of
    the OpenAPI document (admin_api/validation.py), which also says the allowed fields."""
    if not request.is_json:
        raise Unsupported("unsupported-media-type",
                          "send the body as JSON with Content-Type: application/json",
                          {"content_type": request.content_type or ""})
    # Flask checks Content-Length against this before reading, and stops a chunked body
    # at it: 413 payload-too-large (admin_api/errors.py names the limit)
    g.body_limit = request.max_content_length = JSON_MAX_BYTES
    raw = request.get_data(cache=True)
    try:
        data = (json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
                if raw else None)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid-json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:    # nested deeper than the parser's own stack allows
        data = None
        _too_deep()
    if _depth(data) > JSON_MAX_DEPTH:
        _too_deep()
    if not isinstance(data, dict):
        raise InvalidInput("invalid-json", "the body must be a JSON object")
    if schema is not None:
        return validation.check(data, schema)
    unknown = sorted(set(data) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise InvalidInput("invalid-request", f"unknown field(s): {', '.join(unknown)}",
                           [problem(name, "unknown-field",
                                    f"unknown field {name!r}; expected {expected}")
                            for name in unknown])
    return data


def query_int(name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number query parameter from lo to hi: ASCII digits only (`²` is a digit to
    str.isdigit, not to int), else 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and lo <= int(raw) <= hi):
        raise invalid(name, "out-of-range", f"{name} must be a whole number from {lo} to {hi}")
    return int(raw)


def _no_constant(name: str):
    # NaN and Infinity are not JSON, though Python's parser takes them
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):      # 1e400: a number JSON allows, a float does not hold
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


def _no_surrogate(text: str) -> None:
    if _SURROGATE.search(text):
        raise InvalidInput("invalid-json", "the body holds a lone UTF-16 surrogate "
                           "(\\ud800-\\udfff), which is no character")


def _too_deep():
    raise InvalidInput("invalid-json", f"the body nests deeper than {JSON_MAX_DEPTH} levels",
                       {"max_depth": JSON_MAX_DEPTH})


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _depth(value) -> int:
    """How deep `value` nests (iteratively: a deep body must not recurse here either).
    A string holding a lone UTF-16 surrogate ("\\ud800" is valid JSON syntax, but no
    character) is refused here: no database or log could store it."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, str):
            _no_surrogate(item)
            continue
        if isinstance(item, dict):
            for key in item:
                _no_surrogate(key)
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if deepest > JSON_MAX_DEPTH:
            return deepest
        todo.extend((child, level + 1) for child in item)
    return deepest


def check_text(name: str, value: str, *, multiline: bool = False) -> str:
    """Refuse control characters: a single-line value (a name, a label) takes none, as it
    may reach a log line, a header or a channel variable; text to be spoken keeps tab,
    CR and LF but takes no NUL or other control code."""
    ok = patterns.plain_text(value) if multiline else patterns.single_line(value)
    if not ok:
        raise invalid(name, "invalid-characters",
                      f"{name} must not contain control characters"
                      + ("" if multiline else " (CR, LF, NUL, tab, ...)"))
    return value


def required_str(data: dict, name: str, *, max_len: int = 5000,
                 multiline: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "required", f"{name} is required and must be a non-empty string")
    if len(value) > max_len:
        raise invalid(name, "too-long", f"{name} is longer than {max_len} characters")
    return check_text(name, value, multiline=multiline)


def optional_str(data: dict, name: str, *, max_len: int = 200) -> str | None:
    """A single-line string, if sent."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise invalid(name, "invalid-type", f"{name} must be a string of at most {max_len}")
    return check_text(name, value)
