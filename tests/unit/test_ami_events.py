"""agi_server.ami.client hands listeners each AMI event as a plain dict. It copies
panoramisk's Message from its store (the items() walk cost a Python call per header, for
every event): the copy must be the event, repeated headers included."""
from __future__ import annotations

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
