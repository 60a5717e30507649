"""Sans-IO FastAGI: bytes in, events out; command lines in, bytes out.

Shaped like h11: this module never touches a socket or an event loop, so every
byte sequence Asterisk can send is testable in memory. Running one command from
asyncio (``receive_data(b"")`` means EOF; one command is in flight at a time)::

    async def run(conn, reader, writer, command):  # command from agi_server.agi.commands
        writer.write(conn.send(command))
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, Response):
                return event
            elif isinstance(event, CommandFailed):
                raise event.as_error()
            elif isinstance(event, Closed):
                raise AGIHangup("connection closed", command=command)
            # Hangup and Trying are informative; the reply is still on its way

Wire rules this module enforces (from Asterisk's res_agi.c):

- The session opens with ``agi_<name>: <value>`` lines ended by an empty line
  (``Environment``). Asterisk writes that block before it could notice a hangup,
  so a ``HANGUP`` line inside it is a malformed header line (RemoteProtocolError).
- ``HANGUP`` lines may arrive at any other time: between commands, before or
  after a reply, and more than once (at hangup and again when the AGI ends).
  Each yields ``Hangup`` and leaves the outstanding command waiting for its reply.
- Every line ends with LF (never CRLF). Lines are decoded as UTF-8 with
  ``surrogateescape``, so odd bytes survive a round trip through ``send()``.
- Inside a ``520-`` usage block every line is usage text, ``HANGUP`` included:
  Asterisk writes the block in one go from the thread that would send HANGUP.
- EOF between lines yields ``Closed``; EOF mid-line, mid-environment or mid-usage
  is a RemoteProtocolError (truncated). After any RemoteProtocolError the
  connection is unusable and ``next_event()`` keeps raising.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import cast

from agi_server.agi.errors import AGICommandError, LocalProtocolError, RemoteProtocolError

__all__ = ["MAX_COMMAND_BYTES", "NEED_DATA", "AGIConnection", "Closed", "CommandFailed",
           "Environment", "Event", "Hangup", "Response", "Trying"]

# res_agi.c reads a command with fgets() into char buf[2048]: a longer line is cut
# and its tail runs as a second command. 2048 - NUL - LF leaves 2046 bytes.
MAX_COMMAND_BYTES = 2046


class Sentinel(enum.Enum):
    """Values that are not events."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA


class Event:
    """Base class of everything ``next_event()`` returns except NEED_DATA."""


@dataclass(frozen=True)
class Environment(Event):
    """The ``agi_*`` variables Asterisk sends when the session opens."""

    vars: dict[str, str]

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` .. ``agi_arg_N`` in order (the parser checked they are contiguous)."""
        count = sum(1 for key in self.vars if key.startswith("agi_arg_"))
        return tuple(self.vars[f"agi_arg_{index}"] for index in range(1, count + 1))


@dataclass(frozen=True)
class Response(Event):
    """A ``200 result=...`` reply: the command ran (``result`` may still say -1)."""

    result: str
    data: str | None = None  # the "(...)" part, e.g. a variable's value or "timeout"
    endpos: int | None = None
    extras: dict[str, str] = field(default_factory=dict)  # other key=value pairs
    message: str | None = None  # free text such as "Gosub complete"
    line: str = ""  # the raw reply line
    code: int = 200


@dataclass(frozen=True)
class Trying(Event):
    """``100 ...``: the command started (GOSUB); its 200 reply is still to come."""

    text: str


@dataclass(frozen=True)
class CommandFailed(Event):
    """Asterisk refused the command (510, 511, 520, or another 5xx code)."""

    code: int
    text: str  # the first line after the code
    command: str
    reply: str  # every reply line, joined with LF
    usage: str | None = None  # 520 only: the usage text between the 520 lines

    def as_error(self) -> AGICommandError:
        """The matching exception (AGIInvalidCommand, AGIDeadChannel, ...), ready to raise."""
        return AGICommandError.from_reply(self.code, self.text, command=self.command,
                                          reply=self.reply, usage=self.usage)


@dataclass(frozen=True)
class Hangup(Event):
    """A ``HANGUP`` line: the channel is gone; dead-channel commands still work."""


@dataclass(frozen=True)
class Closed(Event):
    """Asterisk closed the connection cleanly (EOF between lines)."""


class _State(enum.Enum):
    HEADER = "reading the environment"
    READY = "ready"
    USAGE = "reading a 520 usage block"
    CLOSED = "closed"
    ERROR = "broken by a protocol error"


_ENV_LINE = re.compile(r"(agi_[A-Za-z0-9_]+): (.*)", re.DOTALL)
# A block of environment lines, none an agi_arg_ key with a malformed number
_ENV_BLOCK = re.compile(r"(?:agi_(?!arg_)[A-Za-z0-9_]+: [^\n]*\n|agi_arg_[1-9][0-9]*: [^\n]*\n)*")
_ARG_KEY = re.compile(r"agi_arg_([1-9][0-9]*)")
_SIMPLE_REPLY = re.compile(r"200 result=(-?[0-9]*)(?: endpos=(-?[0-9]+))?")
_SIMPLE_REPLY_BYTES = re.compile(_SIMPLE_REPLY.pattern.encode("ascii"))
_REPLY_LINE = re.compile(r"([0-9]{3})([ -])(.*)", re.DOTALL)
_RESULT = re.compile(r"200 result=([^ ]*)(.*)", re.DOTALL)
# One " key=value" pair after the result; Asterisk quotes speech text0="..." values.
_EXTRA = re.compile(r' +([A-Za-z0-9_]+)=("[^"]*"|[^ "]*)')
_SPACES = re.compile(r" *")
_INTEGER = re.compile(r"-?[0-9]+")
_USAGE_END = "520 End of proper usage."
_UNSAFE_IN_COMMAND = re.compile(r"[\r\n\x00]")


class AGIConnection:
    """One FastAGI session, seen from the script (our) side."""

    def __init__(self, *, max_header_bytes: int = 16 * 1024, max_line_bytes: int = 8 * 1024):
        # max_header_bytes bounds each multi-line block (environment, 520 usage);
        # max_line_bytes bounds any single line, so a peer cannot grow our buffer.
        self.max_header_bytes = max_header_bytes
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._eof = False
        self._state = _State.HEADER
        self._block_bytes = 0
        self._env: dict[str, str] = {}
        self._usage_lines: list[str] = []
        self._outstanding: str | None = None
        self._error: RemoteProtocolError | None = None
        self.hung_up = False

    @property
    def buffered(self) -> int:
        """Bytes received that do not make a whole event yet (a reply cut mid-line)."""
        return len(self._buffer)

    @property
    def outstanding(self) -> str | None:
        """The command sent whose final reply has not arrived yet, if any."""
        return self._outstanding

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means the peer closed it."""
        if self._eof and data:
            raise LocalProtocolError("received data after EOF")
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Event | Sentinel:
        """The next event, or NEED_DATA; raises RemoteProtocolError on bad input."""
        if self._state is _State.READY:
            # The hot path, twice per command: the reply "200 result=N[ endpos=M]" whole in
            # the buffer, or nothing whole yet. Matched on the bytes, where the general path
            # below would give the same verdict (READY: no error, the line limit alone);
            # anything else (HANGUP, a 5xx, a long line, EOF) goes that way.
            buf = self._buffer
            end = buf.find(b"\n")
            if end < 0:
                if not self._eof and len(buf) <= self.max_line_bytes:
                    return NEED_DATA
            elif end <= self.max_line_bytes and self._outstanding is not None:
                simple = _SIMPLE_REPLY_BYTES.fullmatch(buf, 0, end)
                if simple is not None:
                    # groups first: a match reads the bytearray when asked, not when made
                    result, endpos = simple[1].decode("ascii"), simple[2]
                    endpos = None if endpos is None else int(endpos)
                    line = buf[:end].decode("ascii")
                    del buf[: end + 1]
                    self._outstanding = None
                    return Response(result, None, endpos, {}, None, line)
        if self._error is not None:
            raise RemoteProtocolError("connection unusable after a protocol error") from self._error
        if self._state is _State.CLOSED:
            return Closed()
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._state = _State.ERROR
            self._error = exc
            raise

    def _next_event(self) -> Event | Sentinel:
        if self._state is _State.HEADER and (event := self._whole_environment()) is not None:
            return event
        while True:
            line = self._read_line()
            if line is None:
                if not self._eof:
                    return NEED_DATA
                return self._on_eof()
            event = self._on_line(line)
            if event is not None:
                return event

    def _whole_environment(self) -> Environment | None:
        """Fast path: the rest of the agi_* block is in the buffer, well inside every
        limit, so it is decoded once, checked by one regex (_ENV_BLOCK: the rules
        _on_header_line applies line by line) and taken as one dict. Anything it does not
        accept (a malformed line, a duplicate key) is left to the line-by-line path, which
        raises naming the line, so the verdict is the same either way (the fuzz tests feed
        both paths the same bytes in different chunks)."""
        end = self._buffer.find(b"\n\n")
        if end < 0 or self._buffer.startswith(b"\n"):
            return None
        size = end + 2       # the lines, their LFs and the empty line's LF
        if size > self.max_line_bytes or self._block_bytes + size > self.max_header_bytes:
            return None      # the slow path says which line broke which limit
        text = self._buffer[: end + 1].decode("utf-8", "surrogateescape")
        if _ENV_BLOCK.fullmatch(text) is None:
            return None      # a malformed line: the slow path names it
        lines = text.split("\n")[:-1]
        block = dict(line.split(": ", 1) for line in lines)
        if len(block) != len(lines) or not self._env.keys().isdisjoint(block):
            return None      # a duplicate key: likewise
        del self._buffer[:size]
        self._block_bytes += size
        self._env.update(block)
        return self._finish_environment()

    def _line_limit(self) -> int:
        if self._state in (_State.HEADER, _State.USAGE):
            return min(self.max_line_bytes, self.max_header_bytes - self._block_bytes - 1)
        return self.max_line_bytes

    def _read_line(self) -> str | None:
        limit = self._line_limit()
        end = self._buffer.find(b"\n")
        # Checking the partial line too means the verdict never depends on chunking.
        if (end if end >= 0 else len(self._buffer)) > limit:
            raise RemoteProtocolError(f"line over the size limit ({max(limit, 0)} bytes left) "
                                      f"while {self._state.value}", command=self._outstanding)
        if end < 0:
            return None
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._state in (_State.HEADER, _State.USAGE):
            self._block_bytes += end + 1
        return raw.decode("utf-8", "surrogateescape")

    def _on_eof(self) -> Event:
        if self._buffer:
            raise RemoteProtocolError("connection closed mid-line", command=self._outstanding)
        if self._state is not _State.READY:
            raise RemoteProtocolError(f"connection closed while {self._state.value}",
                                      command=self._outstanding)
        self._state = _State.CLOSED
        return Closed()

    def _on_line(self, line: str) -> Event | None:
        if self._state is _State.HEADER:
            return self._on_header_line(line)
        if self._state is _State.USAGE:
            return self._on_usage_line(line)
        if line == "HANGUP":
            self.hung_up = True
            return Hangup()
        if self._outstanding is None:
            raise RemoteProtocolError("reply with no command outstanding", reply=line)
        if (simple := _SIMPLE_REPLY.fullmatch(line)) is not None:
            # the common reply, "200 result=N[ endpos=M]": what _parse_response would make
            self._outstanding = None
            endpos = simple[2]
            return Response(simple[1], None, None if endpos is None else int(endpos), {},
                            None, line)
        return self._on_reply_line(line, self._outstanding)

    # -- the environment block ---------------------------------------------

    def _on_header_line(self, line: str) -> Event | None:
        if line == "":
            return self._finish_environment()
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError("malformed environment line", reply=line)
        key, value = match.groups()
        if key in self._env:
            raise RemoteProtocolError(f"duplicate environment key {key}", reply=line)
        if key.startswith("agi_arg_") and not _ARG_KEY.fullmatch(key):
            raise RemoteProtocolError(f"bad argument key {key}", reply=line)
        self._env[key] = value
        return None

    def _finish_environment(self) -> Environment:
        numbers = sorted(int(key[8:]) for key in self._env if key.startswith("agi_arg_"))
        if numbers != list(range(1, len(numbers) + 1)):
            raise RemoteProtocolError(f"agi_arg_N keys are not 1..N: {numbers}")
        self._state = _State.READY
        self._block_bytes = 0
        env, self._env = self._env, {}
        return Environment(vars=env)

    # -- replies -----------------------------------------------------------

    def _on_reply_line(self, line: str, command: str) -> Event | None:
        match = _REPLY_LINE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError("malformed reply", command=command, reply=line)
        code, separator, text = int(match[1]), match[2], match[3]
        if separator == "-":
            if code != 520:
                raise RemoteProtocolError("multi-line reply other than 520",
                                          command=command, reply=line)
            self._state = _State.USAGE
            self._block_bytes = len(line.encode("utf-8", "surrogateescape")) + 1
            self._usage_lines = [line]
            return None
        if code == 200:
            return self._complete(_parse_response(line, command))
        if code == 100:
            return Trying(text=text)
        if code >= 500:
            return self._complete(CommandFailed(code, text, command=command, reply=line))
        raise RemoteProtocolError(f"unexpected reply code {code}", command=command, reply=line)

    def _on_usage_line(self, line: str) -> Event | None:
        if line.startswith("520 "):
            return self._finish_usage(line, usage_tail=None)
        # Some Asterisk versions print the usage without a final LF, so the end
        # marker can share a line with the last usage line.
        if line.endswith(_USAGE_END):
            return self._finish_usage(_USAGE_END, usage_tail=line[: -len(_USAGE_END)])
        self._usage_lines.append(line)
        return None

    def _finish_usage(self, last_line: str, usage_tail: str | None) -> CommandFailed:
        first, *body = self._usage_lines
        if usage_tail is not None:
            body.append(usage_tail)
        self._state = _State.READY
        self._block_bytes = 0
        self._usage_lines = []
        reply = "\n".join([first, *body, last_line])
        command = cast(str, self._outstanding)  # always set while in USAGE
        return self._complete(CommandFailed(520, first[4:], command, reply, "\n".join(body)))

    def _complete(self, event: Response | CommandFailed) -> Response | CommandFailed:
        self._outstanding = None
        return event

    # -- sending -----------------------------------------------------------

    def send(self, command: str) -> bytes:
        """Bytes for one command line (LF added); the reply must come before the next."""
        if self._state is _State.HEADER:
            raise LocalProtocolError("send() before the Environment event", command=command)
        if self._state in (_State.CLOSED, _State.ERROR):
            raise LocalProtocolError(f"send() on a connection {self._state.value}", command=command)
        if self._outstanding is not None:
            raise LocalProtocolError(f"send() while {self._outstanding!r} awaits its reply",
                                     command=command)
        if _UNSAFE_IN_COMMAND.search(command) or not command.strip():
            raise LocalProtocolError("a command is one non-empty line", command=command)
        try:
            data = command.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"command is not encodable: {exc}", command=command) from exc
        if len(data) > MAX_COMMAND_BYTES:
            raise LocalProtocolError(f"command is {len(data)} bytes; Asterisk reads at most "
                                     f"{MAX_COMMAND_BYTES}", command=command)
        self._outstanding = command
        return data + b"\n"


def _parse_response(line: str, command: str | None) -> Response:
    match = _RESULT.fullmatch(line)
    if match is None:
        raise RemoteProtocolError("200 reply without result=", command=command, reply=line)
    result, tail = match.groups()
    data, extras, message = _split_tail(tail)
    endpos = extras.pop("endpos", None)
    if endpos is not None and not _INTEGER.fullmatch(endpos):
        raise RemoteProtocolError("endpos is not an integer", command=command, reply=line)
    return Response(result, data, None if endpos is None else int(endpos), extras, message, line)


def _split_tail(tail: str) -> tuple[str | None, dict[str, str], str | None]:
    """Split what follows ``result=X`` into (data, extras, message).

    Data may itself hold spaces and parentheses (a variable's value), so it ends
    at the rightmost ``)`` that is followed by nothing but well-formed
    ``key=value`` pairs. Text that fits neither shape is kept as ``message``.
    """
    if tail.startswith(" ("):
        known: dict[int, bool] = {}
        end = len(tail)
        while (close := tail.rfind(")", 2, end)) != -1:
            if _pairs_from(tail, close + 1, known):
                return tail[2:close], cast("dict[str, str]", _parse_extras(tail[close + 1 :])), None
            end = close
    extras = _parse_extras(tail)
    if extras is not None:
        return None, extras, None
    return None, {}, tail.strip(" ")


def _pairs_from(text: str, position: int, known: dict[int, bool]) -> bool:
    """Whether ``text[position:]`` is only `` key=value`` pairs. ``known`` remembers
    each position walked, so trying every ``)`` of a long line costs one pass."""
    walked = []
    while position not in known:
        walked.append(position)
        match = _EXTRA.match(text, position)
        if match is None:
            known[position] = _SPACES.fullmatch(text, position) is not None
            break
        position = match.end()
    for step in walked:
        known[step] = known[position]
    return known[position]


def _parse_extras(text: str) -> dict[str, str] | None:
    """``' k=v k2="a b"'`` as a dict, or None if ``text`` is not only such pairs."""
    extras: dict[str, str] = {}
    position = 0
    while match := _EXTRA.match(text, position):
        key, value = match.groups()
        extras[key] = value[1:-1] if value.startswith('"') else value
        position = match.end()
    if text[position:].strip(" "):
        return None
    return extras
