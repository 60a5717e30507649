"""Every dial string trunx hands Asterisk, formatted and checked in one place: the `PJSIP/...`
target of a Dial in the IVR or a live transfer, the dialer's Originate, a consult leg, the AI
bridge's SIP leg. Pure (no I/O), so the engine and the API's IVR simulation share it.
"""
from __future__ import annotations

import re

from trunx.phone import is_e164

# A PJSIP endpoint name as trunx's configuration may give one
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# What may follow PJSIP/<endpoint>/ in a Dial argument: a plain sip(s) URI. No comma (a
# second Dial argument), no & (a second destination), no quotes, spaces, ${...} or brackets.
_SIP_URI = re.compile(r"^sips?:[A-Za-z0-9+_.!~*'%;=-]+@[A-Za-z0-9.-]+(?::\d{1,5})?"
                      r"(?:;[A-Za-z0-9_.=-]+)*$")


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
