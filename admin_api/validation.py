"""Request bodies checked against the OpenAPI document's own schemas (admin_api/openapi.py),
so a body's shape and limits are written once and the published schema is exactly what
the API enforces. Route code then checks only what a schema cannot say (a DID held by
this account, a node that exists).

A schema failure answers 422 `invalid-request`, every problem in `details` naming its
field (`tools[0].http.httpMethod`, `metadata.n`) with a code: the failing subschema's
`x-error` (a code, or {keyword: code}) where it has one, else by keyword (KEYWORD_CODES).
"""
from __future__ import annotations

import re
from functools import cache

from jsonschema import Draft202012Validator, ValidationError, validators

from admin_api.openapi import SCHEMAS
from trunx.errors import InvalidInput, problem

KEYWORD_CODES = {
    "required": "required", "type": "invalid-type", "pattern": "invalid-value",
    "enum": "invalid-value", "const": "invalid-value", "minLength": "required",
    "maxLength": "too-long", "minimum": "out-of-range", "maximum": "out-of-range",
    "exclusiveMinimum": "out-of-range", "exclusiveMaximum": "out-of-range",
    "maxItems": "too-many", "maxProperties": "too-many", "minProperties": "required",
    "minItems": "required", "additionalProperties": "unknown-field",
    "propertyNames": "invalid-name", "oneOf": "invalid-value", "anyOf": "invalid-value",
}


@cache
def _ecma(pattern: str) -> re.Pattern:
    # JSON Schema patterns are ECMA-262, where a final `$` is the end of the input; in
    # Python's re it also matches before a final newline ("+19495551234\n")
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance[:80]!r} does not match the pattern")


# Draft 2020-12, patterns read as ECMA-262 (the fuzz test checks generated bodies with it)
SchemaValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@cache
def _validator(name: str):
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    # the named schema itself, resolving $refs against the whole document as before: the
    # root's own $ref was resolved on every request (a third of a small body's check)
    return SchemaValidator(root).evolve(schema=SCHEMAS[name])


def check(data, name: str) -> dict:
    """`data` if it is valid against the named schema, else InvalidInput naming each field
    that is not (unknown fields first: a typo is the likeliest mistake)."""
    problems = []
    for error in _validator(name).iter_errors(data):
        problems.extend(p for p in _problems(error) if p not in problems)
    if problems:
        problems.sort(key=lambda p: (p["code"] != "unknown-field", p["field"]))
        raise InvalidInput("invalid-request", problems[0]["message"], problems)
    return data


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _code(error) -> str:
    hint = error.schema.get("x-error") if isinstance(error.schema, dict) else None
    if isinstance(hint, dict):
        hint = hint.get(error.validator)
    return hint or KEYWORD_CODES.get(error.validator, "invalid-value")


def _problems(error) -> list[dict]:
    where = _field(error.absolute_path)
    instance = error.instance
    if error.validator == "required":
        return [problem(_join(where, name), "required", f"{name} is required")
                for name in error.validator_value
                if isinstance(instance, dict) and name not in instance]
    if error.validator == "dependentRequired" and isinstance(instance, dict):
        return [problem(_join(where, name), _code(error),
                        f"{name} needs {', '.join(needs)}")
                for name, needs in error.validator_value.items()
                if name in instance and any(n not in instance for n in needs)]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        expected = ", ".join(sorted(known))
        return [problem(_join(where, name), "unknown-field",
                        f"unknown field {name!r}; expected {expected}")
                for name in sorted(set(instance) - known)]
    label = where or "the body"
    description = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    return [problem(where, _code(error),
                    f"{label}: {description}" if description
                    else f"{label}: {error.message}"[:300])]


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
