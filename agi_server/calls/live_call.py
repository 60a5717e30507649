"""One call this engine holds: the one object every piece of news about the call reaches.

A LiveCall exists from the moment the engine knows the call (an inbound call's first AGI
block; an outbound call the dialer takes from the queue, or adopts after a restart) until
the call is over for us. It holds, in one place, what was spread over four dicts:

    status            outbound: initiated -> ringing -> answered -> completed | failed
                      (driven by AMI events, agi_server.ami.tracker); inbound: answered,
                      then completed when the AGI session ends
    session           the AGI session while the engine holds the channel
                      (agi_server.calls.session.CallSession: the action queue, the channel
                      facade, the transfer hand-off), None otherwise
    record            an inbound call's IVR path and outcome (agi_server.calls.record)
    recordings        MixMonitor recordings running on the call
    the AMI side      channel name, originate bookkeeping, answer time, hangup cause and
                      the reason *we* ended it, max-duration timers

Where news comes from, and where it lands:

    AGI replies       the session's channel facade (the IVR runner or the hold loop)
    AMI events        agi_server.ami.tracker, for the calls the dialer placed
    API commands      agi_server.calls.intake -> Registry.route -> the session's queue
                      (hangup included), or the tracker's AMI hangup when no session holds it

The registry (agi_server.calls.registry) is the one dict of LiveCalls and the one writer of
the Redis index the API reads.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from trunx import calls

INBOUND, OUTBOUND = "inbound", "outbound"


@dataclass(eq=False)
class LiveCall:
    id: str
    account: str | None
    direction: str
    from_number: str | None
    to_number: str | None
    status: str = "initiated"
    # -- outbound, from the Call row --------------------------------------------------------
    max_duration: float | None = None
    ai: dict | None = None
    row: dict = field(default_factory=dict)       # the Call row as the AI bridge gets it
    # -- the AMI side -----------------------------------------------------------------------
    channel: str | None = None
    originated_login: int | None = None          # AMI login count when the Originate went
    confirmed: bool = False                      # Asterisk queued the Originate
    answered_ts: float | None = None             # epoch seconds
    cause: int | None = None
    hangup_reason: str | None = None             # why *we* ended it: api, max-duration, ...
    # -- what the engine holds ------------------------------------------------------------
    held: bool = False                           # an AGI route holds the channel
    session: object | None = None                # agi_server.calls.session.CallSession
    record: object | None = None                 # agi_server.calls.record.CallRecord (inbound)
    recordings: dict[str, dict] = field(default_factory=dict)   # id -> MixMonitor id, timer
    timers: list = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in calls.FINAL

    @property
    def in_session(self) -> bool:
        """The engine holds the channel over AGI (an action session, or an AI bridge)."""
        return self.held or self.session is not None

    def later(self, delay: float, callback) -> None:
        """Run `callback()` after `delay` seconds unless the call is released first."""
        self.timers.append(asyncio.get_running_loop().call_later(delay, callback))

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
