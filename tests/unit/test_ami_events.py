"""agi_server.ami.client hands listeners each AMI event as a plain dict. It copies
panoramisk's Message from its store (the items() walk cost a Python call per header, for
every event): the copy must be the event, repeated headers included."""
from __future__ import annotations

import asyncio

from panoramisk.message import Message

from agi_server.ami.client import AmiConnection
from trunx.config import Config

RAW = ("Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/carrier-00000001\r\n"
       "Uniqueid: 1732900000.1\r\nChanVariable: a=1\r\nChanVariable: b=2")


def test_a_listener_gets_every_header_as_sent():
    ami = AmiConnection(Config())
    got = []
    ami.add_listener(got.append)
    message = Message.from_line(RAW)
    ami._dispatch(None, message)
    (event,) = got
    assert type(event) is dict
    assert event == {str(k): v for k, v in message.items()}
    assert (event["Event"], event["Uniqueid"], event["ChanVariable"]) == (
        "Newchannel", "1732900000.1", ["a=1", "b=2"])


# a session's bytes as Asterisk sends them: the banner, a response, events of every kind the
# fast path takes or leaves to panoramisk (repeated headers, an ActionID, a quoted Result,
# FullyBooted, a lone EOL, an empty value)
STREAM = (
    b"Asterisk Call Manager/9.0.0\r\n"
    b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/carrier-00000001\r\n"
    b"Uniqueid: 1732900000.1\r\nCallerIDName: \r\nExten: +14155550100\r\n\r\n"
    + RAW.encode() + b"\r\n\r\n"
    b"Event: CoreShowChannel\r\nActionID: a2\r\nUniqueid: 1732900000.1\r\n\r\n"
    b"Event: AGIExecEnd\r\nUniqueid: 1732900000.1\r\nResult: \"200 result=0\"\r\n\r\n"
    b"Event: DTMFEnd\r\nUniqueid: 1732900000.1\r\nDigit: 1\r\nDirection: Received\r\n"
    b"DurationMs: 120\r\n\r\n\r\n"
    b"Event: Hangup\r\nUniqueid: 1732900000.1\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n"
    b"\r\n")


async def _events_through(fast: bool, chunk: int) -> list[dict]:
    """Feed STREAM in chunks of `chunk` bytes to the engine's protocol (or panoramisk's
    own) under a real AmiConnection's Manager; the events its listener got."""
    from panoramisk.ami_protocol import AMIProtocol

    from agi_server.ami.client import _FastEvents, _GuardedManager

    ami = AmiConnection(Config())
    got: list[dict] = []
    ami.add_listener(got.append)
    # the running loop: panoramisk schedules its own FullyBooted callback on it
    manager = _GuardedManager(loop=asyncio.get_running_loop())
    manager.register_event("*", ami._dispatch)
    fast_ones = []
    if fast:
        manager.deliver_event = lambda event: (fast_ones.append(event), ami._deliver(event))
    protocol = (_FastEvents if fast else AMIProtocol)()
    protocol.connection_made(None)
    protocol.factory = manager
    banner = STREAM.index(b"\r\n") + 2       # Asterisk sends it alone, on connecting
    protocol.data_received(STREAM[:banner])
    for i in range(banner, len(STREAM), chunk):
        protocol.data_received(STREAM[i:i + chunk])
    await asyncio.sleep(0)        # that callback runs (and is done) before the test ends
    return got, fast_ones


async def test_the_fast_event_path_gives_listeners_what_panoramisk_gives():
    expected, _ = await _events_through(False, len(STREAM))
    # the action's own event (ActionID a2) is not the listeners'; the others are
    assert [e["Event"] for e in expected] == ["FullyBooted", "Newchannel", "Newchannel",
                                               "CoreShowChannel", "AGIExecEnd", "DTMFEnd",
                                               "Hangup"]
    for chunk in (len(STREAM), 1, 7, 64):
        got, fast_ones = await _events_through(True, chunk)
        assert got == expected, chunk
        # the plain ones took the fast path; repeated headers, an ActionID, a quoted
        # Result and FullyBooted went through panoramisk
        assert [e["Event"] for e in fast_ones] == ["Newchannel", "DTMFEnd", "Hangup"], chunk
