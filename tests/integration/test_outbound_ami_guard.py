"""agi_server.ami.client against a small AMI server on loopback that behaves as Asterisk does for a
user allowed `system` events: it sends FullyBooted after each login, which is when
panoramisk re-sends actions that had no reply. (trunx's own AMI user has no `system` read,
so a real Asterisk never sends it that event; the guard must hold either way.)"""
from __future__ import annotations

import asyncio

import pytest

from agi_server.ami.client import AmiConnection, AmiDisconnected, AmiUnavailable
from trunx import config as trunx_config


class FakeAsterisk:
    """Answers Login and Ping; swallows Originate and drops the link (the reply is lost)."""

    def __init__(self, answer_pings: bool = True):
        self.answer_pings = answer_pings
        self.actions: list[dict] = []
        self.logins = 0
        self._server = None
        self._writers = []

    async def start(self):
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    @property
    def port(self):
        return self._server.sockets[0].getsockname()[1]

    async def stop(self):
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()

    def originates(self):
        return [a for a in self.actions if a.get("Action") == "Originate"]

    async def _session(self, reader, writer):
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        buf = b""
        try:
            while data := await reader.read(65536):
                buf += data
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    action = dict(line.split(": ", 1) for line in raw.decode().split("\r\n")
                                  if ": " in line)
                    self.actions.append(action)
                    if not self._reply(action, writer):
                        writer.transport.abort()
                        return
                await writer.drain()
        except ConnectionError:
            pass

    def _reply(self, action, writer) -> bool:
        aid = action.get("ActionID", "")
        name = action.get("Action")
        if name == "Login":
            self.logins += 1
            writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication "
                         f"accepted\r\n\r\nEvent: FullyBooted\r\nStatus: Fully Booted\r\n"
                         f"\r\n".encode())
        elif name == "Ping":
            if self.answer_pings:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n\r\n"
                             .encode())
        elif name == "Originate":
            return False
        return True


@pytest.fixture
async def fake():
    server = await FakeAsterisk().start()
    yield server
    await server.stop()


def ami_for(port, **kwargs) -> AmiConnection:
    cfg = trunx_config.load(env={}, ami_port=port)
    return AmiConnection(cfg, reconnect_delay=1, **kwargs)


async def wait_for(predicate, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_an_unanswered_originate_is_not_sent_again_after_reconnect(fake):
    ami = ami_for(fake.port)
    await ami.start(wait=5)
    try:
        with pytest.raises(AmiDisconnected):
            await ami.action("Originate", {"Channel": "PJSIP/+12025550110@carrier",
                                           "Async": "true"})
        await wait_for(lambda: fake.logins >= 2 and ami.connected.is_set())
        await asyncio.sleep(1.0)        # FullyBooted came; panoramisk would re-send now
        assert len(fake.originates()) == 1
        assert (await ami.action("Ping"))["Ping"] == "Pong"   # and the new link works
    finally:
        await ami.stop()


async def test_a_ping_without_reply_drops_and_replaces_the_link(fake):
    ami = ami_for(fake.port, ping_interval=0.3, ping_timeout=0.3)
    await ami.start(wait=5)
    try:
        fake.answer_pings = False
        await wait_for(lambda: ami.stats["ping_failures"] >= 1)
        fake.answer_pings = True
        await wait_for(lambda: fake.logins >= 2 and ami.connected.is_set())
        assert ami.stats["aborts"] >= 1
    finally:
        await ami.stop()


async def test_a_stopped_connection_stays_closed(fake):
    ami = ami_for(fake.port)
    await ami.start(wait=5)
    await ami.stop()
    await asyncio.sleep(1.5)            # past the reconnect delay
    assert fake.logins == 1
    with pytest.raises(AmiUnavailable):
        await ami.action("Ping")


async def test_values_with_line_breaks_are_refused(fake):
    ami = ami_for(fake.port)
    await ami.start(wait=5)
    try:
        with pytest.raises(ValueError):
            await ami.action("Originate", {"CallerID": "x\r\nAction: Hangup"})
        assert fake.originates() == []
    finally:
        await ami.stop()
