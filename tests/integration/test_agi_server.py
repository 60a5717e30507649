"""The FastAGI listener on a real socket, with a hand-written peer for the replies the
emulator never sends: a 100 Trying before the 200, and a reply nobody asked for."""
from __future__ import annotations

import asyncio

from agi_server.agi.errors import RemoteProtocolError
from agi_server.agi.server import FastAGIServer
from trunx import config as trunx_config

HEADER = b"agi_network: yes\nagi_network_script: probe\nagi_uniqueid: 1.1\n\n"


async def _serve(route):
    server = FastAGIServer(trunx_config.load(env={}, agi_port=0), {"probe": route})
    await server.start()
    return server


async def test_a_trying_reply_is_not_taken_for_the_answer():
    got = []

    async def route(ch):
        got.append(await ch.run('EXEC "Gosub" "sub,s,1"'))

    server = await _serve(route)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert (await reader.readline()).startswith(b"EXEC")
        writer.write(b"100 result=0 Trying...\n")
        await asyncio.sleep(0.05)
        assert got == []                         # still waiting for the 200
        writer.write(b"200 result=0 Gosub complete\n")
        assert await reader.read() == b""        # the route ended: the server closed
        writer.close()
    finally:
        await server.stop()
    assert (got[0].result, got[0].message) == ("0", "Gosub complete")


async def test_a_reply_between_commands_fails_the_next_command_as_a_protocol_error():
    seen = []

    async def route(ch):
        await ch.answer()
        await asyncio.sleep(0.1)                 # meanwhile the peer sends a stray reply
        try:
            await ch.answer()
        except RemoteProtocolError as exc:
            seen.append(exc)
            raise

    server = await _serve(route)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert await reader.readline() == b"ANSWER\n"
        writer.write(b"200 result=0\n200 result=0\n")
        assert await reader.read() == b""        # closed at once, on the stray reply
        writer.close()
        for _ in range(100):                     # the route meets it at its next command
            if server.stats["errors"]:
                break
            await asyncio.sleep(0.01)
    finally:
        await server.stop()
    assert "no command outstanding" in str(seen[0])
    assert server.stats["errors"] == 1           # logged as a fault, not a hangup


async def test_a_reply_that_stops_midway_fails_its_command_at_the_deadline():
    seen = []

    async def route(ch):
        try:
            await ch.answer()
        except RemoteProtocolError as exc:
            seen.append(exc)
            raise

    server = FastAGIServer(trunx_config.load(env={}, agi_port=0, agi_reply_timeout=0.3),
                           {"probe": route})
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert await reader.readline() == b"ANSWER\n"
        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(b"200 res")                 # ... and nothing more
        assert await asyncio.wait_for(reader.read(), 5) == b""   # the server gave up
        waited = loop.time() - start
        writer.close()
    finally:
        await server.stop()
    assert 0.25 < waited < 2.0
    assert "stopped midway" in str(seen[0]) and server.stats["reply_timeouts"] == 1


async def test_a_command_waiting_for_its_reply_to_begin_is_not_limited():
    got = []

    async def route(ch):
        got.append(await ch.run("ANSWER"))

    server = FastAGIServer(trunx_config.load(env={}, agi_port=0, agi_reply_timeout=0.2),
                           {"probe": route})
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert await reader.readline() == b"ANSWER\n"
        await asyncio.sleep(0.5)                 # longer than agi_reply_timeout, no bytes
        writer.write(b"200 result=0\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await server.stop()
    assert got[0].result == "0" and server.stats["reply_timeouts"] == 0


async def test_sessions_past_the_cap_are_refused_at_once_and_counted():
    release = asyncio.Event()

    async def route(ch):
        await release.wait()

    server = FastAGIServer(trunx_config.load(env={}, agi_port=0, agi_max_sessions=2),
                           {"probe": route})
    await server.start()
    peers = []
    try:
        for _ in range(2):
            peers.append(await asyncio.open_connection("127.0.0.1", server.port))
            peers[-1][1].write(HEADER)
        for _ in range(200):
            if server.calls == 2:
                break
            await asyncio.sleep(0.01)
        assert server.calls == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert await asyncio.wait_for(reader.read(), 5) == b""   # closed, never routed
        writer.close()
        assert server.stats["over_capacity"] == 1 and server.stats["calls"] == 2
        release.set()
        for reader, writer in peers:
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        for _ in range(200):                     # the finished calls free their places
            if server.calls == 0:
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert server.stats["calls"] == 3 and server.stats["over_capacity"] == 1
    finally:
        release.set()
        await server.stop()
