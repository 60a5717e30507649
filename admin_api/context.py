"""What a request handler needs, taken from the app it runs in (never a module global):
the config, the store (database, writer lock, Redis), the authenticated account, the
parsed JSON body."""
from __future__ import annotations

import json

from flask import current_app, g, request

from trunx.errors import InvalidInput, Unsupported, invalid, problem


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


def json_body(allowed: set[str]) -> dict:
    """The request's JSON object; 415 if it isn't JSON, 400 if it doesn't parse,
    422 naming any field outside `allowed` (a typo is better caught than ignored)."""
    if not request.is_json:
        raise Unsupported("unsupported-media-type",
                          "send the body as JSON with Content-Type: application/json",
                          {"content_type": request.content_type or ""})
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid-json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("invalid-json", "the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise InvalidInput("invalid-request", f"unknown field(s): {', '.join(unknown)}",
                           [problem(name, "unknown-field",
                                    f"unknown field {name!r}; expected {expected}")
                            for name in unknown])
    return data


def required_str(data: dict, name: str, *, max_len: int = 5000) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "required", f"{name} is required and must be a non-empty string")
    if len(value) > max_len:
        raise invalid(name, "too-long", f"{name} is longer than {max_len} characters")
    return value


def optional_str(data: dict, name: str, *, max_len: int = 200) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise invalid(name, "invalid-type", f"{name} must be a string of at most {max_len}")
    return value
