"""Where an agent's cold transfer may send the caller: an agent's `transfers`.

Ultravox's call-transfers guide (https://docs.ultravox.ai/telephony/call-transfers): the
built-in `coldTransfer` tool works on SIP calls, and "you'll need to add a parameter
override for the target, which should be a sip user"; the name and description may be
overridden too. On a SIP call the transfer is a REFER ("removing the agent and related SIP
stack altogether"), whose Refer-To user our Asterisk takes as the extension in
`[trunx-ai-transfer]` (agi_server/ai/cold_transfer.py). The model cannot choose the target:
it is fixed in the agent's template, so trunx checks each one when the agent is saved.

A target as users write it, and the SIP user it becomes:

    +14155550100          a number, dialled over the trunk      +14155550100
    ivr:<ivr_id>#<node>   an IVR of the account, at that node   ivr~<ivr_id>~<node>

`:` and `#` may not stand unescaped in a SIP URI's user part (RFC 3261, 25.1), and `~`
is neither in IVR ids and node names (trunx.patterns.NAME) nor escaped by anyone, so the
wire form splits back without ambiguity. Pure functions but `check`, which reads the
account's IVRs.
"""
from __future__ import annotations

import re

from trunx import patterns
from trunx.errors import invalid
from trunx.phone import is_e164

MAX_TARGETS = 10
_IVR_TARGET = re.compile(rf"ivr:({patterns.NAME})#({patterns.NAME})")
_IVR_USER = re.compile(rf"ivr~({patterns.NAME})~({patterns.NAME})")


def parse(value) -> tuple[str, str] | str | None:
    """A target as written: an E.164 number (str), (ivr_id, node), or None if neither."""
    if not isinstance(value, str):
        return None
    if value.startswith("+"):
        return value if is_e164(value) else None
    m = _IVR_TARGET.fullmatch(value)
    return (m.group(1), m.group(2)) if m else None


def sip_user(value: str) -> str:
    """The SIP user (coldTransfer's `target` override) for a checked target."""
    target = parse(value)
    if target is None:
        raise ValueError(f"not a transfer target: {value!r}")
    return target if isinstance(target, str) else f"ivr~{target[0]}~{target[1]}"


def from_sip_user(user: str) -> tuple[str, str] | str | None:
    """What a REFER's user asks for: an E.164 number, (ivr_id, node), or None."""
    if not isinstance(user, str):
        return None
    if user.startswith("+"):
        return user if is_e164(user) else None
    m = _IVR_USER.fullmatch(user)
    return (m.group(1), m.group(2)) if m else None


def written(target) -> str:
    """A parsed target as users write it (what the call's record says)."""
    return target if isinstance(target, str) else f"ivr:{target[0]}#{target[1]}"


def selected_tools(targets) -> list[dict]:
    """One built-in coldTransfer per target, its `target` overridden; with several, each
    renamed (tool names are unique within a call) and described so the model can pick."""
    tools = []
    many = len(targets) > 1
    for i, value in enumerate(targets, 1):
        tool = {"toolName": "coldTransfer", "parameterOverrides": {"target": sip_user(value)}}
        if many:
            tool["nameOverride"] = f"coldTransfer{i}"
            where = parse(value)
            tool["descriptionOverride"] = (
                f"Transfers the call to {where}." if isinstance(where, str) else
                f"Transfers the call back to the phone menu {where[0]!r}, at {where[1]!r}.")
        tools.append(tool)
    return tools


def check(field: str, value, account_id: str) -> list[str]:
    """An agent's `transfers`: at most MAX_TARGETS, each an E.164 number or an IVR of the
    account with that node in its current version. 422 naming the entry otherwise."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise invalid(field, "invalid-type",
                      f"{field} must be an array of at most {MAX_TARGETS} transfer targets")
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        target = parse(item)
        if target is None:
            raise invalid(where, "invalid-transfer-target",
                          f"{where} must be an E.164 number or ivr:<ivr_id>#<node>")
        if isinstance(target, tuple):
            _check_node(where, account_id, *target)
    if len(set(value)) != len(value):
        raise invalid(field, "duplicate", f"{field} lists a target twice")
    return list(value)


def _check_node(where: str, account_id: str, ivr_id: str, node: str) -> None:
    from trunx.models import Ivr, IvrVersion

    ivr = Ivr.get_or_none(Ivr.account == account_id, Ivr.ivr_id == ivr_id)
    if ivr is None:
        raise invalid(where, "unknown-ivr", f"{where}: no IVR {ivr_id!r} in this account")
    version = IvrVersion.get_or_none(IvrVersion.ivr == ivr,
                                     IvrVersion.version == ivr.current_version)
    nodes = ((version.definition or {}).get("nodes") or {}) if version else {}
    if node not in nodes:
        raise invalid(where, "unknown-node",
                      f"{where}: IVR {ivr_id!r} has no node {node!r}")
