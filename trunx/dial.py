"""Every dial string trunx hands Asterisk, formatted and checked in one place: the `PJSIP/...`
target of a Dial in the IVR or a live transfer, the dialer's Originate, a consult leg.
Pure (no I/O), so the engine and the API's IVR simulation share it.
"""
from __future__ import annotations

import re

from trunx.phone import is_e164

# A PJSIP endpoint name as trunx's configuration may give one
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
