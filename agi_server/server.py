"""The FastAGI listener: the only module that touches asyncio streams.

One task per connection. It reads the agi_* block under two deadlines (a peer that goes
quiet mid-header is dropped after `agi_idle_timeout`, one that dribbles after
`agi_header_timeout`), routes by `agi_network_script`, and runs the route. The task never
swallows: a hangup ends it quietly, anything else is logged with the call's uniqueid and
counted, cancellation is re-raised, and the socket is always closed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from agi_server.channel import Channel
from agi_server.errors import AGIHangup, RemoteProtocolError
from agi_server.protocol import (
    NEED_DATA,
    AGIConnection,
    Closed,
    CommandFailed,
    Environment,
    Hangup,
    Response,
)

log = logging.getLogger(__name__)

Route = Callable[[Channel], Awaitable[None]]
READ_SIZE = 65536


class AGITransport:
    """Sends one command at a time over a stream and returns its reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: AGIConnection):
        self.reader, self.writer, self.conn = reader, writer, conn
        self.hung_up = False
        self.commands = 0

    async def next_event(self):
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(READ_SIZE))

    async def command(self, line) -> Response:
        self.commands += 1
        self.writer.write(self.conn.send(line))
        while True:
            event = await self.next_event()
            if isinstance(event, CommandFailed):
                if event.code == 511:
                    # the channel is gone: for call control a hangup, not a fault
                    raise AGIHangup("dead channel", command=event.command, reply=event.reply)
                raise event.as_error()
            if isinstance(event, Hangup):
                self.hung_up = True    # the reply to this command still follows
            elif isinstance(event, Closed):
                raise AGIHangup("connection closed by Asterisk")
            elif isinstance(event, Response):
                return event


class FastAGIServer:
    def __init__(self, config, routes: dict[str, Route]):
        self.config = config
        self.routes = routes
        self.allow = set(config.agi_allow)
        self.stats: Counter = Counter()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.config.agi_host,
                                                  self.config.agi_port)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader, writer) -> None:
        task = asyncio.create_task(self._session(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_environment(self, transport: AGITransport) -> dict:
        deadline = time.monotonic() + self.config.agi_header_timeout
        while True:
            budget = min(self.config.agi_idle_timeout, deadline - time.monotonic())
            if budget <= 0:
                raise TimeoutError("agi_* block too slow")
            event = transport.conn.next_event()
            if event is NEED_DATA:
                data = await asyncio.wait_for(transport.reader.read(READ_SIZE), budget)
                transport.conn.receive_data(data)
                continue
            if isinstance(event, Environment):
                return event.vars
            raise RemoteProtocolError(f"unexpected {type(event).__name__} before agi_* block")

    async def _session(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        uniqueid = "-"
        try:
            if peer[0] not in self.allow:
                self.stats["refused"] += 1
                log.warning("refused FastAGI connection from %s", peer[0])
                return
            transport = AGITransport(reader, writer, AGIConnection())
            try:
                env = await self._read_environment(transport)
            except (TimeoutError, RemoteProtocolError, ConnectionError) as exc:
                self.stats["bad_header"] += 1
                log.info("dropped FastAGI peer %s: %s", peer[0], exc)
                return
            uniqueid = env.get("agi_uniqueid", "-")
            script = env.get("agi_network_script", "").split("?")[0].strip("/")
            route = self.routes.get(script)
            if route is None:
                self.stats["unknown_script"] += 1
                log.warning("call %s asked for unknown script %r", uniqueid, script)
                return
            self.stats["calls"] += 1
            await route(Channel(transport, env))
        except AGIHangup:
            self.stats["hangups"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats["errors"] += 1
            log.exception("call %s failed", uniqueid)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
