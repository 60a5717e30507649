"""The AudioSocket framing (agi_server/amd/audiosocket.py) and the server's stream hand-out,
over a real loopback socket speaking as Asterisk does."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from agi_server.amd import audiosocket as a


def packet(kind: int, payload: bytes) -> bytes:
    return bytes((kind, len(payload) >> 8, len(payload) & 0xFF)) + payload


def test_parser_any_chunking_gives_the_same_packets():
    data = (packet(a.KIND_UUID, bytes(16)) + packet(a.KIND_AUDIO, bytes(range(256)) * 2)
            + packet(a.KIND_DTMF, b"5") + packet(a.KIND_TERMINATE, b""))
    whole = a.Parser().feed(data)
    assert [k for k, _ in whole] == [a.KIND_UUID, a.KIND_AUDIO, a.KIND_DTMF,
                                     a.KIND_TERMINATE]
    for size in (1, 2, 3, 7, 320):
        p, got = a.Parser(), []
        for i in range(0, len(data), size):
            got += p.feed(data[i:i + size])
        assert got == whole


def test_parser_refuses_a_payload_no_asterisk_sends():
    with pytest.raises(a.ProtocolError):
        a.Parser().feed(bytes((a.KIND_AUDIO, 0xFF, 0xFF)))


def test_silence_is_a_20ms_audio_frame():
    ((kind, payload),) = a.Parser().feed(a.SILENCE)
    assert (kind, payload) == (a.KIND_AUDIO, bytes(320))


async def test_server_delivers_audio_to_the_expected_stream_and_terminates_it():
    server = a.AudioSocketServer("127.0.0.1", 0)
    await server.start()
    try:
        stream = server.expect()
        heard, digits = [], []
        stream.on_audio = heard.append
        stream.on_dtmf = digits.append
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(packet(a.KIND_UUID, uuid.UUID(stream.uuid).bytes)
                     + packet(a.KIND_AUDIO, b"\x01\x00" * 160) + packet(a.KIND_DTMF, b"#"))
        await writer.drain()
        await asyncio.wait_for(stream.connected.wait(), 5)
        async with asyncio.timeout(5):
            while not digits:
                await asyncio.sleep(0.01)
        assert heard == [b"\x01\x00" * 160] and digits == ["#"] and stream.frames == 1
        stream.talk = True                      # the ticker sends silence frames
        got = await asyncio.wait_for(reader.readexactly(len(a.SILENCE) * 2), 5)
        assert got == a.SILENCE * 2
        stream.close()                          # then the terminate packet, and EOF
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest.endswith(a.TERMINATE)
        await asyncio.wait_for(stream.ended.wait(), 5)
        writer.close()
    finally:
        await server.stop()


async def test_a_connection_naming_no_expected_stream_is_dropped():
    server = a.AudioSocketServer("127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(packet(a.KIND_UUID, uuid.uuid4().bytes))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert server.refused == 1
        writer.close()
    finally:
        await server.stop()
