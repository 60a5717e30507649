"""Call control that both the IVR runner and live-call actions use: playing a prompt, the
dial strings, the do-not-call check, and the dial itself. Each exists once, here: every
`PJSIP/...` target trunx hands Asterisk (a Dial in the IVR or a live transfer, the dialer's
Originate, a consult leg, the AI bridge's SIP leg) is formatted and checked below.

`channel` is the Channel facade (agi_server.agi.channel) or a session's LiveChannel;
`db(fn, *args)` runs a blocking database call off the event loop (the engine's `_db`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import NamedTuple

from agi_server.agi.errors import MissingSound
from trunx import dnc, redis_schema
from trunx.phone import is_e164

log = logging.getLogger(__name__)

# A PJSIP endpoint name as trunx's configuration may give one
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# What may follow PJSIP/<endpoint>/ in a Dial argument: a plain sip(s) URI. No comma (a
# second Dial argument), no & (a second destination), no quotes, spaces, ${...} or brackets.
_SIP_URI = re.compile(r"^sips?:[A-Za-z0-9+_.!~*'%;=-]+@[A-Za-z0-9.-]+(?::\d{1,5})?"
                      r"(?:;[A-Za-z0-9_.=-]+)*$")


class Played(NamedTuple):      # a NamedTuple: made on every prompt, cheap to build
    key: str = ""               # the escape key that cut the prompt short, or ''
    endpos: int | None = None   # samples played, as Asterisk reports
    missing: bool = False       # Asterisk has no such file: nothing was heard


_MISSING = Played(missing=True)


async def play(channel, filename: str, escape_digits: str = "") -> Played:
    """Play a prompt. A file Asterisk does not have is no reason to end the call: it comes
    back as `missing` (the caller hears nothing there); a hangup still raises AGIHangup."""
    try:
        key = await channel.play(filename, escape_digits)
    except MissingSound:
        return _MISSING
    return Played(key, channel.last_endpos)


def endpoint(name) -> str:
    """A PJSIP endpoint name from the configuration, checked (it is part of a channel)."""
    if not isinstance(name, str) or not _ENDPOINT.match(name):
        raise ValueError(f"not a PJSIP endpoint name: {name!r}")
    return name


def dial_string(to: str, trunk_endpoint: str) -> str:
    """The Dial target (or Originate channel) for an E.164 number over the carrier trunk.
    `to` reaches a Dial argument, so it is checked here, not trusted."""
    if not isinstance(to, str) or not is_e164(to):
        raise ValueError(f"not an E.164 number: {to!r}")
    return f"PJSIP/{to}@{endpoint(trunk_endpoint)}"


def uri_dial_string(sip_endpoint: str, uri: str) -> str:
    """The Dial target for a SIP URI reached through a PJSIP endpoint (the AI bridge's leg
    to the agent). The URI comes from a provider: only a plain sip(s) URI passes."""
    if not isinstance(uri, str) or not _SIP_URI.match(uri):
        raise ValueError("not a plain SIP URI")
    return f"PJSIP/{endpoint(sip_endpoint)}/{uri}"


async def is_suppressed(account: str, number: str, *, redis, db) -> bool:
    """The account's do-not-call list: Redis's set first (no thread hop for a listed
    number), then the database, which is the record (Redis may be down, or have lost the
    set), as trunx.dnc says."""
    try:
        if await redis.sismember(redis_schema.dnc_key(account), number):
            return True
    except Exception as exc:
        log.warning("DNC set for %s unreadable (%s): asking the database", account, exc)
    return await db(dnc.is_suppressed, account, number)


@dataclass(frozen=True, slots=True)
class DialResult:
    status: str                 # DIALSTATUS (ANSWER, BUSY, NOANSWER, ...; UNKNOWN if unset)
    caller_gone: bool           # Dial returned -1: the calling channel hung up


async def dial(channel, target: str, timeout: int) -> DialResult:
    """EXEC Dial(target, timeout) and the DIALSTATUS it left. GET VARIABLE works on a
    dead channel too, so the status is read even when the caller hung up meanwhile."""
    response = await channel.exec("Dial", target, str(int(timeout)))
    status = await channel.get_variable("DIALSTATUS") or "UNKNOWN"
    return DialResult(status, _code(response) == -1)


def _code(response) -> int:
    try:
        return int(response.result)
    except (TypeError, ValueError, AttributeError):
        return 0
