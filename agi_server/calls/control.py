"""Call control that both the IVR runner and live-call actions use: playing a prompt, the
do-not-call check, and the dial itself. Every `PJSIP/...` target trunx hands Asterisk is
formatted and checked in trunx.dial (pure, so the API's IVR simulation shares it with the
IVR machine); its functions are imported here, where the engine's rooms reach them.

`channel` is the Channel facade (agi_server.agi.channel) or a session's LiveChannel;
`db(fn, *args)` runs a blocking database call off the event loop (the engine's `_db`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from agi_server.agi.errors import MissingSound
from trunx import dnc, redis_schema

# the engine's rooms reach the dial strings as control.dial_string etc.
from trunx.dial import dial_string, endpoint  # noqa: F401

log = logging.getLogger(__name__)

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


async def ask(channel, filename: str, escape_digits: str, timeout: float) -> Played:
    """A question: the prompt, then up to `timeout` s for the first key, in one command
    (channel.ask). Missing and hangup as play."""
    try:
        key = await channel.ask(filename, escape_digits, timeout)
    except MissingSound:
        return _MISSING
    return Played(key, channel.last_endpos)


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
