"""The engine's one AMI connection: panoramisk's Manager with its known flaws guarded.

panoramisk's Manager reconnects and parses well, but:

1. its keep-alive sends `Ping` and never looks at the reply, so a connection that silently
   died (a NAT dropped it, Asterisk hung) is never noticed. Here a watchdog sends Ping as a
   real action and aborts the transport when no `Pong` comes in time, which makes the
   Manager reconnect.
2. after a reconnect it re-sends every action that had no reply yet (on the FullyBooted
   event, which Asterisk sends after login to users with `system` read). For an Originate
   that is a second phone call. Here nothing is ever re-sent: on a disconnect every action
   in flight fails with AmiDisconnected, and the caller decides (the dialer never re-sends
   an Originate; it asks Asterisk what became of the call instead). trunx's AMI user has no
   `system` read, so Asterisk would not trigger the re-send anyway; the guard does not rely
   on that, and neither does the Originate, whose ChannelId (the call id) Asterisk refuses
   to reuse while the first channel lives.
3. closing it does not stop it: a lost connection schedules a reconnect even after close().
   Here a closed connection stays closed.

Actions are sent with `as_list=False`, so an Async Originate's future resolves on
"Originate successfully queued" and its later OriginateResponse reaches the event
listeners like any other event. Values are refused if they carry CR or LF, which would
start a new header or a new action.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from trunx.errors import Unavailable, UpstreamError

log = logging.getLogger(__name__)

Listener = Callable[[dict], None]


class AmiError(UpstreamError):
    """Asterisk answered `Response: Error`."""

    def __init__(self, action: str, response: Mapping):
        super().__init__("ami-error", f"{action}: {response.get('Message', 'error')}",
                         {"action": action, "response": dict(response)})
        self.action, self.response = action, dict(response)


class AmiUnavailable(Unavailable):
    """Not connected, or the connection was lost before the reply: the action's fate is
    unknown (it may or may not have reached Asterisk)."""

    code = "ami-unavailable"

    def __init__(self, message: str):
        super().__init__(self.code, message)


class AmiDisconnected(AmiUnavailable):
    code = "ami-disconnected"


# events panoramisk itself acts on, and events whose values it rewrites (`Result` is
# unquoted): these always take its own path
_ITS_EVENTS = frozenset({"FullyBooted", "Shutdown"})


class _FastEvents(AMIProtocol):
    """panoramisk's protocol, with the common event (no ActionID, each header once, no
    quoted value) made straight into the dict the listeners get. panoramisk builds a
    Message (a case-insensitive dict, a Python call a header) and matches every
    registered pattern for each one: under real SIP calls that was about a quarter of
    the engine's busy time. Anything else (the banner, responses, an action's events,
    an unusual event) goes through panoramisk unchanged, so both give the same dict."""

    def data_received(self, data):
        deliver = getattr(self.factory, "deliver_event", None)
        if self.version is None or deliver is None:
            return super().data_received(data)
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if self.queue:
            text = self.queue.popleft() + text
        blocks = text.split("\r\n\r\n")
        self.queue.append(blocks.pop())
        for block in blocks:
            block = block.strip()      # as panoramisk does (a lone EOL happens)
            if block.startswith("Event: ") and "ActionID: " not in block:
                lines = block.split("\r\n")
                try:
                    event = dict(line.split(": ", 1) for line in lines)
                except ValueError:     # a line without ": "
                    event = None
                if event is not None and len(event) == len(lines) \
                        and "Result" not in event and event["Event"] not in _ITS_EVENTS:
                    event["content"] = ""          # as panoramisk's Message has it
                    deliver(event)
                    continue
            message = Message.from_line(block)
            if message is not None:
                self.handle_message(message)


class _GuardedManager(Manager):
    """Manager with flaws 1-3 (module docstring) taken out; the wrapper does the rest."""

    closing = False
    _connect_task: asyncio.Task | None = None

    def ping(self):            # flaw 1: the unchecked ping; AmiConnection's watchdog instead
        self.pinger = None

    async def send_awaiting_actions(self, *_):   # flaw 2: never re-send
        self._fail_awaiting()

    def _fail_awaiting(self) -> None:
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiDisconnected(
                    f"connection lost before Asterisk answered {action['action']}"))

    def connect(self, *args, **kwargs):    # flaw 3: closed stays closed
        if self.closing:
            return None
        self._connect_task = super().connect(*args, **kwargs)
        return self._connect_task

    def connection_lost(self, exc):
        self._fail_awaiting()
        if self.closing:
            self._connected = False
            self.loop.call_soon(self.on_disconnect, self, exc)
            return
        super().connection_lost(exc)


def _check(fields: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    out = []
    for key, value in fields:
        text = str(value)
        if any(c in text or c in key for c in "\r\n") or ":" in key:
            raise ValueError(f"AMI field {key!r} carries a line break (or a colon in its name)")
        out.append((key, text))
    return out


class AmiConnection:
    """`await ami.start(); await ami.action("Ping"); ami.add_listener(fn); await ami.stop()`.

    `connected` is set while logged in. `on_login` callbacks run (as tasks) after every
    login, the first and each reconnect, so state missed while disconnected can be fetched.
    """

    def __init__(self, config, *, ping_interval: float = 5.0, ping_timeout: float = 3.0,
                 reconnect_delay: int = 1, action_timeout: float = 10.0):
        self.config = config
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.action_timeout = action_timeout
        self.reconnect_delay = reconnect_delay
        self.connected = asyncio.Event()
        self.stats: Counter = Counter()
        self._listeners: list[Listener] = []
        self._login_hooks: list[Callable[[], object]] = []
        self._inflight: set[asyncio.Future] = set()
        self._manager: _GuardedManager | None = None
        self._watchdog: asyncio.Task | None = None
        self._hook_tasks: set[asyncio.Task] = set()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, wait: float | None = None) -> None:
        """Connect (and keep reconnecting); with `wait`, wait that long for the login."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._manager = _GuardedManager(
            host=cfg.ami_host, port=cfg.ami_port, username=cfg.ami_user,
            secret=cfg.ami_secret, events="on", loop=loop, log=log,
            reconnect_timeout=self.reconnect_delay, ping_delay=3600,
            on_login=self._logged_in, on_disconnect=self._disconnected,
            protocol_factory=_FastEvents)
        self._manager.deliver_event = self._deliver
        self._manager.register_event("*", self._dispatch)
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._ping_loop(), name="ami-watchdog")
        if wait:
            await asyncio.wait_for(self.connected.wait(), wait)

    async def stop(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for task in list(self._hook_tasks):
            task.cancel()
        await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        manager = self._manager
        if manager is not None:
            manager.closing = True
            if manager._connect_task and not manager._connect_task.done():
                manager._connect_task.cancel()
                await asyncio.gather(manager._connect_task, return_exceptions=True)
            manager.close()
        self._fail_inflight(AmiDisconnected("AMI connection closed"))
        self.connected.clear()

    def abort(self) -> None:
        """Drop the TCP connection now (the watchdog's remedy); the Manager reconnects."""
        protocol = getattr(self._manager, "protocol", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            self.stats["aborts"] += 1
            transport.abort()

    # -- callbacks from the Manager -------------------------------------------------------
    def _logged_in(self, manager) -> None:
        self.stats["logins"] += 1
        self.connected.set()
        log.info("AMI logged in to %s:%s", self.config.ami_host, self.config.ami_port)
        for hook in self._login_hooks:
            task = asyncio.ensure_future(hook())
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI login hook failed", exc_info=task.exception())

    def _disconnected(self, manager, exc) -> None:
        if self.connected.is_set():
            self.stats["disconnects"] += 1
            log.warning("AMI connection lost (%s)", exc)
        self.connected.clear()
        self._fail_inflight(AmiDisconnected("AMI connection lost before the reply"))

    def _fail_inflight(self, exc: Exception) -> None:
        for fut in list(self._inflight):
            if not fut.done():
                fut.set_exception(exc)
        self._inflight.clear()

    def _dispatch(self, manager, message) -> None:
        # panoramisk's Message is a CaseInsensitiveDict: its items() walk costs a Python
        # call per header, every event (6% of the engine's samples under the SIP bench);
        # its store holds (key, value) pairs, copied here at C speed
        store = getattr(message, "_store", None)
        self._deliver(dict(store.values()) if type(store) is dict
                      else {str(k): v for k, v in message.items()})

    def _deliver(self, event: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("AMI listener failed on %s", event.get("Event"))

    # -- use ------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_login(self, hook: Callable[[], object]) -> None:
        self._login_hooks.append(hook)

    async def action(self, name: str, fields: Mapping | Iterable[tuple[str, object]] = (), *,
                     timeout: float | None = None, check: bool = True,
                     as_list: bool = False):
        """Send one action; its response (a list of messages for as_list actions).

        AmiUnavailable when not logged in, AmiDisconnected when the connection drops
        before the reply (the action may have run), AmiError on `Response: Error`."""
        if not self.connected.is_set() or self._manager is None:
            raise AmiUnavailable(f"AMI is not connected; {name} not sent")
        items = _check(fields.items() if isinstance(fields, Mapping) else fields)
        data: dict = {"Action": name}
        for key, value in items:   # a repeated header (Variable) becomes a list
            if key in data:
                data[key] = [*data[key], value] if isinstance(data[key], list) else \
                    [data[key], value]
            else:
                data[key] = value
        action = Action(data, as_list=as_list)
        future = self._manager.send_action(action, as_list=as_list)
        self._inflight.add(future)
        self.stats[f"sent:{name}"] += 1
        try:
            response = await asyncio.wait_for(asyncio.shield(future),
                                              timeout or self.action_timeout)
        except TimeoutError:
            raise AmiUnavailable(f"no reply to {name} in time") from None
        finally:
            self._inflight.discard(future)
        first = response[0] if isinstance(response, list) else response
        if check and first.get("Response") == "Error":
            raise AmiError(name, first)
        return response

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if not self.connected.is_set():
                continue
            try:
                reply = await self.action("Ping", timeout=self.ping_timeout)
                if reply.get("Ping") != "Pong" and reply.get("Response") != "Success":
                    raise AmiUnavailable(f"unexpected ping reply {dict(reply)}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["ping_failures"] += 1
                log.warning("AMI ping failed (%s); reconnecting", exc)
                self.abort()
