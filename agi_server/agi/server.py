"""The FastAGI listener: the only module that touches sockets.

Each connection is an `AGISession`, an asyncio Protocol around the sans-IO AGIConnection:
bytes go from `data_received` straight into the parser, and the reply to the command in
flight resolves the one future that command awaits. No StreamReader in between: on the
hot path a command costs one write, one read callback and one task wake-up (streams cost
a buffer copy and a second future per read; measured in bench/, docs/benchmarks.md).

The agi_* block is read under two deadlines (a peer that goes quiet mid-header is dropped
after `agi_idle_timeout`, one that dribbles after `agi_header_timeout`); then the session
routes by `agi_network_script` and runs the route in a task of its own. That task never
swallows: a hangup ends it quietly, anything else is logged with the call's uniqueid and
counted, cancellation is re-raised, and the socket is always closed.

Limits, so no peer holds the engine: at most `agi_max_sessions` connections at once (one
more is closed at once, counted as `over_capacity`: Asterisk's AGI() then returns
AGISTATUS=FAILURE and the dialplan goes on); and a reply that has begun must be whole
within `agi_reply_timeout` (a peer that stops mid-reply fails the command with a
RemoteProtocolError and the session is closed). A command's wait for its reply to begin is
not limited: EXEC Dial rightly answers only when the bridged call ends, hours later.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from agi_server.agi.channel import Channel
from agi_server.agi.errors import AGIHangup, RemoteProtocolError
from agi_server.agi.protocol import (
    NEED_DATA,
    AGIConnection,
    Closed,
    CommandFailed,
    Environment,
    Hangup,
    Trying,
)

log = logging.getLogger(__name__)

Route = Callable[[Channel], Awaitable[None]]


class AGISession(asyncio.Protocol):
    """One FastAGI connection: reads the agi_* block, then runs one command at a time."""

    def __init__(self, server: FastAGIServer):
        self.server = server
        self.conn = AGIConnection()
        self.transport: asyncio.Transport | None = None
        self.env: dict | None = None
        self.closed = False           # the socket is gone: no command can run
        self.commands = 0
        self._waiter: asyncio.Future | None = None
        self._error: RemoteProtocolError | None = None   # broke the session between commands
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reply_timer: asyncio.TimerHandle | None = None   # a reply begun, not whole

    @property
    def hung_up(self) -> bool:
        """Asterisk said HANGUP (the parser keeps it); replies still follow."""
        return self.conn.hung_up

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername") or ("?",)
        if peer[0] not in self.server.allow:
            self.server.stats["refused"] += 1
            log.warning("refused FastAGI connection from %s", peer[0])
            self.closed = True
            transport.close()
            return
        if self.server.sessions >= self.server.config.agi_max_sessions:
            self.server.stats["over_capacity"] += 1
            log.warning("refused FastAGI connection: %d sessions already (agi_max_sessions)",
                        self.server.sessions)
            self.closed = True
            transport.close()
            return
        self.server.pending.add(self)
        self._deadline = self._loop.time() + self.server.config.agi_header_timeout
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._pump()
        if self.env is not None and not self.closed:
            self._watch_reply()

    def eof_received(self) -> bool:
        return False      # close our side too: FastAGI has no half-closed use

    def connection_lost(self, exc) -> None:
        self._cancel_timer()
        self._stop_reply_timer()
        self.server.pending.discard(self)
        self.conn.receive_data(b"")       # EOF: what was left is an event or truncated
        self._pump()
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(AGIHangup("connection lost"))

    # -- the agi_* block ---------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._cancel_timer()
        budget = min(self.server.config.agi_idle_timeout, self._deadline - self._loop.time())
        self._timer = self._loop.call_later(max(budget, 0), self._header_too_slow)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_too_slow(self) -> None:
        self._timer = None
        self._drop("agi_* block too slow")

    def _drop(self, why) -> None:
        """A peer that never became a call: counted, logged, closed."""
        if self.env is None and not self.closed:
            self.server.stats["bad_header"] += 1
            peer = self.transport.get_extra_info("peername") or ("?",)
            log.info("dropped FastAGI peer %s: %s", peer[0], why)
        self.closed = True
        self._cancel_timer()
        self.server.pending.discard(self)
        self.transport.close()

    def _start(self, env: dict) -> None:
        self._cancel_timer()
        self.server.pending.discard(self)
        self.env = env
        self.server.start_call(self, env)

    # -- a reply that stops midway ---------------------------------------------------------
    def _watch_reply(self) -> None:
        """Armed while part of a reply sits in the parser, disarmed once it is whole."""
        if self.conn.buffered and self._waiter is not None:
            if self._reply_timer is None:
                self._reply_timer = self._loop.call_later(
                    self.server.config.agi_reply_timeout, self._reply_too_slow)
        else:
            self._stop_reply_timer()

    def _stop_reply_timer(self) -> None:
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None

    def _reply_too_slow(self) -> None:
        self._reply_timer = None
        self.server.stats["reply_timeouts"] += 1
        error = RemoteProtocolError(
            f"the reply to {self.conn.outstanding!r} stopped midway: not whole within "
            f"{self.server.config.agi_reply_timeout:g} s")
        waiter, self._waiter = self._waiter, None
        self.closed = True
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.transport.close()

    # -- events ------------------------------------------------------------------------
    def _pump(self) -> None:
        """Hand every complete event to whoever waits for it."""
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                if self.env is None:
                    self._drop(exc)
                elif self._waiter is not None and not self._waiter.done():
                    waiter, self._waiter = self._waiter, None
                    waiter.set_exception(exc)
                elif not self.closed:
                    self._error = exc           # the next command raises it
                    self.closed = True
                    self.transport.close()
                return
            if event is NEED_DATA:
                if self.env is None and not self.closed:
                    self._arm_header_timer()
                return
            if self.env is None:
                if isinstance(event, Environment):
                    self._start(event.vars)
                    continue
                if isinstance(event, Closed):
                    return
                self._drop(RemoteProtocolError(
                    f"unexpected {type(event).__name__} before agi_* block"))
                return
            if isinstance(event, Hangup):
                continue                  # the reply to the command in flight still follows
            if isinstance(event, Trying):
                continue                  # 100: started; its 200 reply is still to come
            if isinstance(event, Closed):
                self.closed = True
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
            if self.closed:
                return

    # -- the transport the Channel facade uses -----------------------------------------
    async def command(self, line):
        """Send one command and return its Response; a dead channel is AGIHangup."""
        if self._error is not None:
            raise self._error
        if self.closed:
            raise AGIHangup("connection closed by Asterisk")
        self.commands += 1
        self.transport.write(self.conn.send(line))
        self._waiter = waiter = self._loop.create_future()
        event = await waiter
        if isinstance(event, CommandFailed):
            if event.code == 511:
                # the channel is gone: for call control a hangup, not a fault
                raise AGIHangup("dead channel", command=event.command, reply=event.reply)
            raise event.as_error()
        if isinstance(event, Closed):
            raise AGIHangup("connection closed by Asterisk")
        return event          # a Response


class FastAGIServer:
    session_class = AGISession      # the bench swaps in a subclass that adds two clock reads

    def __init__(self, config, routes: dict[str, Route]):
        self.config = config
        self.routes = routes
        self.allow = set(config.agi_allow)
        self.stats: Counter = Counter()
        self.pending: set[AGISession] = set()     # connected, agi_* block not read yet
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: self.session_class(self),
                                                self.config.agi_host, self.config.agi_port,
                                                backlog=4096)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def calls(self) -> int:
        """Calls being run now."""
        return len(self._tasks)

    @property
    def sessions(self) -> int:
        """Connections held now: calls, and peers still sending their agi_* block."""
        return len(self._tasks) + len(self.pending)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for session in list(self.pending):
            session._drop("server stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server:
            await self._server.wait_closed()

    def start_call(self, session: AGISession, env: dict) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(self._call(session, env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _call(self, session: AGISession, env: dict) -> None:
        uniqueid = env.get("agi_uniqueid", "-")
        try:
            script = env.get("agi_network_script", "").split("?")[0].strip("/")
            route = self.routes.get(script)
            if route is None:
                self.stats["unknown_script"] += 1
                log.warning("call %s asked for unknown script %r", uniqueid, script)
                return
            self.stats["calls"] += 1
            await route(Channel(session, env))
        except AGIHangup:
            self.stats["hangups"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats["errors"] += 1
            log.exception("call %s failed", uniqueid)
        finally:
            session.closed = True
            session.transport.close()
