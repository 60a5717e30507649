"""A small asyncio AMI client for tests and tools, and a scripted-caller originate helper.

Not the engine's AMI connection (that one lives in agi_server with its reconnect and pacing
rules): this one is for a test to drive an Asterisk it started and to watch its events.
Every event is kept, so a test can wait for one that already arrived.
"""
from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Self

Message = dict[str, str]
Fields = Mapping[str, object] | Iterable[tuple[str, object]]


class AmiError(RuntimeError):
    """An action answered `Response: Error`."""

    def __init__(self, action: str, response: Message):
        super().__init__(f"{action}: {response.get('Message', response)}")
        self.response = response


def encode_action(action: str, fields: Fields = ()) -> bytes:
    """One action as wire bytes. Values are checked: a CR or LF in a value would start a
    new header (or a new action), so it is refused rather than sent."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    lines = [f"Action: {action}"]
    for key, value in items:
        text = str(value)
        if any(c in text or c in key for c in "\r\n") or ":" in key:
            raise ValueError(f"AMI field {key!r} carries a line break or a colon in its name")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AmiClient:
    """`async with AmiClient(port, user, secret) as ami: await ami.action("Ping")`."""

    def __init__(self, port: int, username: str, secret: str, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.banner = ""
        self.events: list[Message] = []
        self.globals_set: set[str] = set()   # global variables this client has set
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def connect(self, login: bool = True, timeout: float = 5.0) -> Message | None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout)
        self.banner = (await asyncio.wait_for(self._reader.readline(), timeout)).decode().strip()
        self._task = asyncio.create_task(self._read_loop())
        if login:
            return await self.action("Login", {"Username": self.username,
                                               "Secret": self.secret, "Events": "on"})
        return None

    async def close(self) -> None:
        if self._writer is not None:
            try:
                if not self._writer.is_closing():
                    self._writer.write(encode_action("Logoff"))
            finally:
                self._writer.close()
                try:
                    await self._writer.wait_closed()
                except (ConnectionError, OSError):
                    pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _read_loop(self) -> None:
        message: Message = {}
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                text = line.decode(errors="replace").rstrip("\r\n")
                if text:
                    key, _, value = text.partition(":")
                    message[key.strip()] = value.strip()
                    continue
                if message:
                    self._dispatch(message)
                message = {}
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("AMI connection closed"))
            self._changed.set()

    def _dispatch(self, message: Message) -> None:
        is_response = "Response" in message and "Event" not in message
        fut = self._pending.pop(message.get("ActionID", ""), None) if is_response else None
        if fut is not None and not fut.done():
            fut.set_result(message)
        elif "Event" in message:
            self.events.append(message)
            self._changed.set()

    async def action(self, name: str, fields: Fields = (), *, check: bool = True,
                     timeout: float = 10.0) -> Message:
        """Send an action and return its response; AmiError on `Response: Error` if check."""
        action_id = f"t{next(self._ids)}"
        items = list(fields.items() if isinstance(fields, Mapping) else fields)
        if name == "Setvar" and not any(k == "Channel" for k, _ in items):
            # a global variable outlives this client: remember it so a test can undo it
            self.globals_set.update(str(v) for k, v in items if k == "Variable")
        fut = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        self._writer.write(encode_action(name, [("ActionID", action_id), *items]))
        await self._writer.drain()
        try:
            response = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(action_id, None)
        if check and response.get("Response") == "Error":
            raise AmiError(name, response)
        return response

    async def wait_event(self, predicate: Callable[[Message], bool], timeout: float = 10.0,
                         since: int = 0) -> Message:
        """The first event (from index since on, already received or not) matching predicate."""
        async def scan() -> Message:
            seen = since
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                if self._task is not None and self._task.done():
                    raise ConnectionError("AMI connection closed")
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(scan(), timeout)


def event_is(name: str, **fields: str) -> Callable[[Message], bool]:
    """A wait_event predicate: event `name` whose fields equal the given ones."""
    return lambda e: e.get("Event") == name and all(e.get(k) == v for k, v in fields.items())


@dataclass
class OriginatedCall:
    """A test call: `caller_id` is the uniqueid of the scripted caller half (Local ;1),
    `callee_id` the half that dialled the number under test (Local ;2)."""
    caller_id: str
    callee_id: str
    response: Message = field(default_factory=dict)

    @property
    def action_id(self) -> str:
        """The Originate's ActionID, which its OriginateResponse event carries."""
        return self.response.get("ActionID", "")

    def is_originate_response(self) -> Callable[[Message], bool]:
        return event_is("OriginateResponse", ActionID=self.action_id)

    def is_hangup_of(self, which: str) -> Callable[[Message], bool]:
        uid = self.caller_id if which == "caller" else self.callee_id
        return event_is("Hangup", Uniqueid=uid)


async def originate_local(ami: AmiClient, number: str, steps: str = "", *,
                          context: str = "inbound", caller_id: str = "Test <+12025550199>",
                          variables: Mapping[str, str] | None = None,
                          timeout: float = 30.0) -> OriginatedCall:
    """Originate `Local/<number>@<context>` whose other half runs [test-caller] with STEPS
    (see devtools/stack/dialplan/test-caller.conf). Async: returns once Asterisk accepted
    the action; follow the call by its uniqueids (OriginateResponse, Hangup events)."""
    token = uuid.uuid4().hex[:12]
    call = OriginatedCall(caller_id=f"tc-{token}", callee_id=f"td-{token}")
    fields: list[tuple[str, object]] = [
        ("Channel", f"Local/{number}@{context}"),
        ("Context", "test-caller"), ("Exten", "s"), ("Priority", "1"),
        ("CallerID", caller_id), ("Timeout", int(timeout * 1000)), ("Async", "true"),
        ("ChannelId", call.caller_id), ("OtherChannelId", call.callee_id),
        ("Variable", f"STEPS={steps}"),
    ]
    fields += [("Variable", f"{k}={v}") for k, v in (variables or {}).items()]
    if any("," in str(value) for key, value in fields if key == "Variable"):
        raise ValueError("Originate splits each Variable header on commas: no ',' in values")
    call.response = await ami.action("Originate", fields)
    return call
