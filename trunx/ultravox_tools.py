"""What Ultravox accepts in tools, metadata and prompts, checked before a call is placed
(Ultravox would otherwise refuse it only when the callee has already answered).

Facts, from Ultravox's API schema (https://docs.ultravox.ai/api-reference, schemas
SelectedTool, BaseToolDefinition, StartAgentCallRequest) and its tools guide
(https://docs.ultravox.ai/tools/built-in-tools):
  - a SelectedTool sets exactly one of toolId (a durable tool's UUID), toolName (an
    existing tool's name, which is how built-in tools such as hangUp are selected) or
    temporaryTool (an inline definition);
  - a temporary tool needs exactly one implementation, `http` or `client`; trunx has no
    client side, so inline tools must have `http`;
  - metadata keys may not start with "ultravox.", which is reserved for system-provided
    metadata;
  - `{{name}}` in a prompt is a template variable, filled from the call's templateContext
    (Create Agent Call; trunx supplies TEMPLATE_VARIABLES, see
    ultravox_mapping.template_context).

Errors are InvalidInput (422) naming the field.
"""
from __future__ import annotations

import re

from trunx.errors import invalid
from trunx.ultravox_sip import is_uuid

# Ultravox's built-in tools trunx lets an agent or call select by name; trunx carries
# out what they ask of the call on its side of the SIP leg (docs/ai.md)
BUILT_IN = ("hangUp", "coldTransfer", "leaveVoicemail", "playDtmfSounds")
RESERVED_PREFIX = "ultravox."
# what trunx puts in every templateContext (ultravox_mapping.template_context; docs/ai.md)
TEMPLATE_VARIABLES = ("did", "caller", "keys", "nodes", "ivr", "from", "to")
# mustache variables: {{name}} or {{ name }}, dotted paths allowed
_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


def check_tool_id(field: str, value) -> str:
    """A tool reference: a durable tool's UUID or a built-in tool's name."""
    if is_uuid(value) or value in BUILT_IN:
        return value
    raise invalid(field, "invalid-tool-id",
                  f"{field} must be an Ultravox tool id (a UUID) or a built-in tool name "
                  f"({', '.join(BUILT_IN)})")


def reference(tool_id: str) -> dict:
    """A checked tool reference as an Ultravox SelectedTool."""
    return {"toolName": tool_id} if tool_id in BUILT_IN else {"toolId": tool_id}


def check_inline_http(field: str, tool: dict) -> None:
    """An inline tool's implementation: Ultravox refuses a temporary tool without one, and
    the only one trunx can offer is `http`."""
    if not isinstance(tool.get("http"), dict):
        raise invalid(f"{field}.http", "required",
                      "an inline tool needs an http implementation "
                      "({baseUrlPattern, httpMethod}); built-in tools go by name in toolIds")


def check_metadata_keys(field: str, metadata: dict | None) -> None:
    for key in metadata or {}:
        if str(key).lower().startswith(RESERVED_PREFIX):
            raise invalid(f"{field}.{key}", "reserved-key",
                          f'metadata keys starting "{RESERVED_PREFIX}" are reserved by Ultravox')


def template_variables(text: str | None) -> list[str]:
    """The template variables a prompt uses, in order, each once."""
    seen: list[str] = []
    for name in _VARIABLE.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


def check_template(field: str, text: str | None, supplied=TEMPLATE_VARIABLES) -> None:
    """Every `{{...}}` in `text` must be a variable trunx supplies for the call; Ultravox
    would refuse the call (or read the braces out) otherwise."""
    missing = [v for v in template_variables(text) if v not in supplied]
    if missing:
        known = ", ".join(supplied) or "none"
        raise invalid(field, "unknown-template-variable",
                      f"{field} uses {{{{{missing[0]}}}}}, a template variable trunx does not "
                      f"supply for this call (supplied: {known})")
