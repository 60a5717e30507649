"""An AudioSocket server: Asterisk streams a call's audio to the engine over TCP.

The AGI session runs `AudioSocket(<uuid>,<host:port>)` (app_audiosocket); Asterisk connects
here, names the stream by sending the uuid, then sends what the call's party says as 20 ms
frames of 8 kHz signed-linear audio, until either side ends it. Each packet is a three-byte
header (kind, big-endian payload length) and the payload (Asterisk's AudioSocket page):

    0x00  terminate          0x01  the uuid (16 bytes)     0x03  a DTMF digit (1 byte)
    0x10  slin 8 kHz audio   0xff  an error (Asterisk's code)

The engine sends 0x00 when it has heard enough: app_audiosocket then returns 0 and the AGI
session carries on (a closed socket does the same, Asterisk 21 and later).

A stream with `talk` set is sent 20 ms of silence every 20 ms, by one ticker for all of
them: app_audiosocket writes to the channel only what it receives, and audio injected with
ChanSpy's whisper (a live play while the engine listens) is mixed into frames written to
the channel, so with nothing written nothing would be heard.

`Parser` is the pure part (bytes in, packets out). `AudioSocketServer.expect()` hands out a
`Stream` for a uuid before the AGI command is sent; audio for that uuid goes to the
stream's `on_audio` callback, synchronously, from the connection's protocol callback: a
detector fed there costs no queue hop and no coroutine switch per frame. A connection naming
no expected uuid, or none within UUID_WAIT, is dropped.
"""
from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from collections.abc import Callable

log = logging.getLogger(__name__)

KIND_TERMINATE, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
TERMINATE = bytes((KIND_TERMINATE, 0, 0))
SILENCE = bytes((KIND_AUDIO, 1, 64)) + bytes(320)      # 20 ms of 8 kHz slin
TICK = 0.02
MAX_PAYLOAD = 4096          # Asterisk sends 320-byte frames; anything far larger is not it
UUID_WAIT = 5.0             # seconds a connection may take to name its stream


class ProtocolError(Exception):
    pass


class Parser:
    """Bytes from the socket in any chunking -> (kind, payload) packets."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out, pos, buf = [], 0, self._buf
        while len(buf) - pos >= 3:
            length = (buf[pos + 1] << 8) | buf[pos + 2]
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"a {length}-byte payload")
            if len(buf) - pos - 3 < length:
                break
            out.append((buf[pos], bytes(buf[pos + 3:pos + 3 + length])))
            pos += 3 + length
        del buf[:pos]
        return out


class Stream:
    """One expected audio stream. Set `on_audio(pcm)` (and `on_dtmf(digit)`) before the
    AGI command runs; `ended` is set when the connection closes, for any reason."""

    def __init__(self, server: AudioSocketServer, uuid: str):
        self.uuid = uuid
        self.address = server.address
        self.on_audio: Callable[[bytes], None] = lambda pcm: None
        self.on_dtmf: Callable[[str], None] = lambda digit: None
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.frames = 0
        self.error: int | None = None         # Asterisk's 0xff code, if it sent one
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._closing = False
        self._talk = False

    @property
    def talk(self) -> bool:
        return self._talk

    @talk.setter
    def talk(self, on: bool) -> None:
        self._talk = on
        if on:
            self._server.ticking()

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self._closing:
            transport.write(data)

    def close(self) -> None:
        """Tell Asterisk to stop streaming (app_audiosocket returns); idempotent."""
        self._closing = True
        self._talk = False
        transport = self._transport
        if transport is not None and not transport.is_closing():
            try:
                transport.write(TERMINATE)
                transport.close()
            except (ConnectionError, RuntimeError):
                pass
        self._server.forget(self.uuid)

    @property
    def closing(self) -> bool:
        return self._closing


class AudioSocketServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, advertise: str = ""):
        self.host, self.port = host, port
        self._advertise = advertise
        self._streams: dict[str, Stream] = {}
        self._server: asyncio.base_events.Server | None = None
        self.connections = 0
        self.refused = 0
        self._ticker: asyncio.Task | None = None

    @property
    def address(self) -> str:
        """host:port as Asterisk dials it (the AudioSocket application's second argument)."""
        return self._advertise or f"{self.host}:{self.port}"

    def ticking(self) -> None:
        """Start the silence ticker if it is not running (a stream set `talk`)."""
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            talking = [s for s in self._streams.values() if s.talk]
            if not talking:
                return
            for stream in talking:
                stream.send(SILENCE)
            due += TICK
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for stream in list(self._streams.values()):
            stream.close()

    def expect(self) -> Stream:
        stream = Stream(self, str(uuidlib.uuid4()))
        self._streams[stream.uuid] = stream
        return stream

    def forget(self, uuid: str) -> None:
        self._streams.pop(uuid, None)

    def _bind(self, transport: asyncio.Transport, packet) -> Stream | None:
        """The stream a connection's first packet names, if expected and still free."""
        kind, payload = packet
        stream = None
        if kind == KIND_UUID and len(payload) == 16:
            stream = self._streams.get(str(uuidlib.UUID(bytes=payload)))
        if stream is None or stream._transport is not None:
            self.refused += 1
            log.warning("audiosocket: a connection for no expected stream")
            return None
        stream._transport = transport
        stream.connected.set()
        return stream

    def _protocol(self) -> _Connection:
        self.connections += 1
        return _Connection(self)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]


class _Connection(asyncio.Protocol):
    """One AudioSocket connection: callbacks, not a task, so a frame costs one call into
    the stream's on_audio and no coroutine switch (hundreds of calls send 50 a second)."""

    def __init__(self, server: AudioSocketServer):
        self.server = server
        self.parser = Parser()
        self.stream: Stream | None = None
        self.transport: asyncio.Transport | None = None
        self._uuid_timer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._uuid_timer = asyncio.get_running_loop().call_later(UUID_WAIT, transport.close)

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        # the common case: one whole 20 ms frame, nothing buffered
        if (stream is not None and len(data) == 323 and data[0] == KIND_AUDIO
                and data[1] == 1 and data[2] == 64 and not self.parser._buf):
            if not stream.closing:
                stream.frames += 1
                stream.on_audio(data[3:])
            return
        try:
            packets = self.parser.feed(data)
        except ProtocolError as exc:
            log.info("audiosocket: connection dropped: %s", exc)
            self.transport.close()
            return
        if stream is None and packets:
            try:
                stream = self.stream = self.server._bind(self.transport, packets[0])
            except ValueError:
                stream = None
            self._uuid_timer.cancel()
            if stream is None:
                self.transport.close()
                return
            if stream.closing:              # closed before Asterisk got here
                stream.close()
                return
            packets = packets[1:]
        if stream is not None:
            _deliver(stream, packets)

    def connection_lost(self, exc) -> None:
        if self._uuid_timer is not None:
            self._uuid_timer.cancel()
        if self.stream is not None:
            self.stream.ended.set()
            self.server.forget(self.stream.uuid)


def _deliver(stream: Stream, packets) -> None:
    for kind, payload in packets:
        if stream.closing:
            return
        if kind == KIND_AUDIO:
            stream.frames += 1
            stream.on_audio(payload)
        elif kind == KIND_DTMF and payload:
            stream.on_dtmf(chr(payload[0]))
        elif kind == KIND_ERROR:
            stream.error = payload[0] if payload else 0
        elif kind == KIND_TERMINATE:
            return
