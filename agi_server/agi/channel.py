"""The call-control facade the runner and live actions use: answer, play, ask, gather, exec.

It turns AGI results into plain values (a pressed digit, collected digits, a variable), a
dead channel into AGIHangup and a sound Asterisk does not have into MissingSound. It never
formats a command string itself (commands.py does, through its one quoting function) and
never touches a socket: `transport.command(line)` sends one command and returns its
Response (agi_server.agi.server.AGISession, the asyncio Protocol on the FastAGI socket,
or any other peer: the emulator, a test's scripted transport).
"""
from __future__ import annotations

import time

from agi_server.agi import commands
from agi_server.agi.errors import AGIHangup, HangupInWait, MissingSound

STREAM_STOP = 1000   # AST_CONTROL_STREAM_STOP, as WAIT FOR DIGIT reports a ControlPlayback stop
SAMPLE_RATE = 8000   # endpos is in samples; trunx stages its prompts at 8 kHz
EARLY = 0.25         # s: a GET OPTION wait that ended this long before its time was cut short


class Channel:
    def __init__(self, transport, env: dict):
        self.transport = transport
        self.env = env
        self.last_endpos: int | None = None   # samples of the last file played, per Asterisk
        self.stream_stopped = False           # the last WAIT FOR DIGIT ended by ControlPlayback
        self.wait_left = 0.0                  # s the last GET OPTION's wait had left, if cut

    async def run(self, line):
        return await self.transport.command(line)

    @staticmethod
    def _code(response) -> int:
        try:
            return int(response.result)
        except (TypeError, ValueError):
            return 0

    def _live(self, response, what: str):
        """-1 from a call-control command means the channel is gone."""
        if self._code(response) == -1:
            raise AGIHangup(f"{what} failed: channel hung up")
        return response

    async def answer(self) -> None:
        self._live(await self.run(commands.answer()), "ANSWER")

    async def play(self, filename: str, escape_digits: str = "",
                   offset: int | None = None) -> str:
        """Play a file (from sample `offset`); returns the key that interrupted it, or ''.
        Raises MissingSound if Asterisk has no such file, AGIHangup if the channel is gone."""
        line = commands.stream_file(filename, escape_digits, offset)
        r = await self.run(line)
        code = self._code(r)
        if code == -1:
            await self._stream_failed(line, r)
        self.last_endpos = r.endpos
        return chr(code) if 0 < code < 256 else ""

    async def ask(self, filename: str, escape_digits: str, timeout: float) -> str:
        """A question: play `filename`, and if no key cut it short wait `timeout` seconds
        for one, as ONE command (GET OPTION): res_agi reads and drops a caller's keys
        between two commands, so a key pressed as the prompt ends is not lost. Returns
        the key, or '' when the wait ran out. `last_endpos` as play sets it.

        res_agi.c handle_getoption keeps only escape digits from its wait, so a caller
        hanging up in the wait, or a stop there, reads as result=0 like a timeout. A wait
        that ended well before its time is therefore checked: a dead channel raises
        AGIHangup (as a hangup in WAIT FOR DIGIT does), a live one leaves the seconds it
        had left in `wait_left` for the caller to wait out."""
        line = commands.get_option(filename, escape_digits, max(1, int(timeout * 1000)))
        started = time.monotonic()
        r = await self.run(line)
        code = self._code(r)
        if code == -1:
            await self._stream_failed(line, r)
        self.last_endpos = r.endpos
        self.wait_left = 0.0
        if code == 0:
            # the prompt played out (endpos samples at 8 kHz), then the wait began
            left = timeout + (r.endpos or 0) / SAMPLE_RATE - (time.monotonic() - started)
            if left > EARLY:
                try:
                    await self._alive("GET OPTION", line)
                except AGIHangup as exc:
                    raise HangupInWait(str(exc), r.endpos, command=line) from None
                self.wait_left = left
        return chr(code) if 0 < code < 256 else ""

    async def _alive(self, what: str, line: str) -> None:
        """AGIHangup unless the channel is up (CHANNEL STATUS on a dead channel is 511)."""
        if getattr(self.transport, "hung_up", False):
            raise AGIHangup(f"{what}: channel hung up", command=line)
        if self._code(await self.run(commands.channel_status())) < 0:
            raise AGIHangup(f"{what}: channel hung up", command=line)

    async def _stream_failed(self, line: str, response) -> None:
        """STREAM FILE and GET OPTION say result=-1 both for a file they cannot open and
        for a channel that hung up while it played (res_agi.c); the reply looks the same.
        The channel tells them apart (`_alive`): after a hangup Asterisk sends HANGUP and
        refuses CHANNEL STATUS on the dead channel (511, AGIHangup from the transport); a
        live channel answers it. Costs one command, only on this rare path."""
        await self._alive(line.split(' "', 1)[0] + " failed", line)
        self.last_endpos = 0
        raise MissingSound("no such sound file", command=line,
                           reply=getattr(response, "line", None))

    async def wait_for_digit(self, timeout: float) -> str:
        """The key pressed within `timeout` seconds, or ''. `stream_stopped` tells a wait
        that AMI ControlPlayback ended (Asterisk reports AST_CONTROL_STREAM_STOP, 1000)."""
        r = self._live(await self.run(commands.wait_for_digit(max(0, int(timeout * 1000)))),
                       "WAIT FOR DIGIT")
        code = self._code(r)
        self.stream_stopped = code == STREAM_STOP
        return chr(code) if 0 < code < 256 else ""

    async def exec(self, app: str, *args: str):
        return await self.run(commands.exec_(app, *args))

    async def get_variable(self, name: str) -> str | None:
        r = await self.run(commands.get_variable(name))
        return r.data if self._code(r) == 1 else None

    async def hangup(self) -> None:
        await self.run(commands.hangup())
