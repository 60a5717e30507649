"""Ultravox's side of the outgoing SIP flow, played by the test carrier Asterisk: the SIP
guide's "Outgoing SIP Calls" (https://docs.ultravox.ai/telephony/sip) has Ultravox INVITE
the `to` of an agent call's `{"sip": {"outgoing": {...}}}` medium, authenticating with its
`username`/`password`. tests/fakes/fake_ultravox.py creates the call; this makes the
carrier place the INVITE (devtools carrier pjsip.conf [ultravox-out], dialplan
[ultravox-sip-out])."""
from __future__ import annotations

import re

from tests.fakes.fake_ultravox import FakeUltravox

OUTGOING_USER = "trunx-uv-out"            # the carrier's [ultravox-out-auth] credentials
OUTGOING_PASSWORD = "uv-out-test-secret"


def attach_outgoing(fake: FakeUltravox, carrier) -> None:
    """Agent calls with the outgoing SIP medium make the carrier (Ultravox's SIP side,
    attach_carrier first) INVITE their `to` URI over its endpoint `ultravox-out`, which
    authenticates as OUTGOING_USER; answered, the leg runs [ultravox-sip-out] with the
    Ultravox call id as extension."""
    def place(call: dict, outgoing: dict) -> None:
        to = outgoing["to"]
        if not re.fullmatch(r"sip:[A-Za-z0-9]+@[0-9.]+:\d+", to):
            return                       # nothing the CLI could take safely
        fake.outgoing_placed.append({"call": call["callId"], "to": to})
        carrier.cli(f"channel originate PJSIP/ultravox-out/{to} extension "
                    f"{call['callId']}@ultravox-sip-out")
    # answering the PBX's digest challenge (the carrier role does not load it)
    module = "res_pjsip_outbound_authenticator_digest.so"
    if module.split(".")[0] not in carrier.cli(f"module show like {module}"):
        carrier.cli(f"module load {module}")
    fake.outgoing_placed = []        # what was placed: {call, to}
    fake.on_outgoing = place
