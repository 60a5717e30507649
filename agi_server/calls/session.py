"""A live call's action session: the queue of actions for one AGI session, and a channel for
the code that holds the call (the IVR runner, the outbound hold) that serves them.

AGI runs one command at a time, and the long ones (STREAM FILE, WAIT FOR DIGIT) cannot be
cancelled from our side of the socket. AMI can: `ControlPlayback Control: stop` queues
AST_CONTROL_STREAM_STOP on the channel, and on Asterisk 22 (checked on the real one)

    STREAM FILE      returns at once: result=0, endpos = how far it got
    WAIT FOR DIGIT   returns at once: result=1000 (the control frame's number)
    between commands res_agi's loop reads the frame and drops it (nothing goes stale)

A question (GET OPTION: a prompt, then the wait for its first key, as one command) is
stopped in two steps: on Asterisk 22 a stop in its prompt only ends the prompt (its
waitstream reads the stop as a normal end) and the question goes on into its wait, so the
session stops again while the reply has not come; a stop in the wait ends it with
result=0, like a timeout (res_agi.c handle_getoption keeps only escape digits). The
stops it took tell where it was: two, and the prompt was cut at `endpos`.

So `submit` queues the action and, if the session is inside one of those commands,
stops it; the session then serves the queue and resumes what it was doing (a prompt from
the sample where it stopped, a wait with the time that was left). Without AMI the queue is
still served, at the next prompt or wait (the outbound hold waits in 1-second slices).

Play and speak run in the session too, through the same stoppable STREAM FILE: a new play,
speak, transfer or hangup ends them ("interrupted"); dtmf and record pause them and they
resume where they were.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

from agi_server.agi.errors import AGIHangup, HangupInWait

log = logging.getLogger(__name__)

PREEMPTING = frozenset({"play", "speak", "transfer", "hangup"})
QUESTION_STOPS = 3          # stops sent to one question at most (prompt, wait, one spare)
QUESTION_STOP_GRACE = 0.2   # s a question has to answer a stop before the next one


class CallSession:
    def __init__(self, call_id: str, account: str, direction: str, ch, *, ami, runner,
                 on_handoff=None, on_hangup=None, recordings: dict | None = None):
        self.call_id, self.account, self.direction = call_id, account, direction
        self.raw = ch                                # agi_server.agi.channel.Channel
        self.channel_name = ch.env.get("agi_channel", "")
        self.uniqueid = ch.env.get("agi_uniqueid", "")
        self.ami = ami
        self.runner = runner                         # agi_server.calls.actions.ActionRunner
        self.on_handoff = on_handoff                 # the caller was transferred away
        self.on_hangup = on_hangup                   # hangup asked (reason)
        self.channel = LiveChannel(self)
        # recording id -> MixMonitor id, timer: the LiveCall's own dict (the call has them)
        self.recordings: dict[str, dict] = {} if recordings is None else recordings
        self.handed_off = False
        self.transfer: tuple | None = None           # (action id, params): a blind one in flight
        self.bridged = False                         # in a Dial: actions go over AMI
        self.alone = False                           # ...with no other party (AudioSocket)
        self.audio = None                            # that AudioSocket stream, while it runs
        self.bridge_play = None                      # (helper channel, its task) over AMI
        self.stops = 0                               # ControlPlayback stops sent
        self._queue: collections.deque[dict] = collections.deque()
        self._waiting = False
        self._asking = False                         # the command in flight is a question
        self._answered = asyncio.Event()             # ...and its reply came
        self.question_stops = 0                      # stops the last stopped question took
        self._stop: asyncio.Task | None = None

    # -- the queue ---------------------------------------------------------------------------
    def submit(self, command: dict) -> None:
        """Queue a command {action, id, params}; stop the prompt or wait in progress.
        In a Dial the AGI session is blocked: the command runs over AMI at once
        (hook: agi_server.calls.bridged)."""
        if self.bridged:
            self.runner.run_bridged(self, command)
            return
        self._queue.append(command)
        if self._waiting and self._stop is None and self.ami is not None and self.channel_name:
            self._stop = asyncio.ensure_future(
                self._stop_question() if self._asking else self._send_stop())
            self._stop.add_done_callback(_quiet)

    async def _send_stop(self) -> None:
        self.stops += 1
        await self.ami.action("ControlPlayback",
                              {"Channel": self.channel_name, "Control": "stop"})

    async def _stop_question(self) -> None:
        """Stop a GET OPTION: once, and again if its reply has not come (the first stop
        ended its prompt, not its wait). `question_stops` counts them."""
        self.question_stops = 0
        while self._asking and self.question_stops < QUESTION_STOPS:
            await self._send_stop()
            self.question_stops += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), QUESTION_STOP_GRACE)

    def take(self, wanted) -> dict | None:
        """Remove and return the first queued command `wanted(command)` accepts."""
        for command in self._queue:
            if wanted(command):
                self._queue.remove(command)
                return command
        return None

    async def dial(self, *args: str):
        """EXEC Dial, with the session in bridged mode while it runs: actions submitted
        meanwhile (and any still queued) go over AMI (hook: agi_server.calls.bridged)."""
        return await self.blocking("Dial", *args)

    async def blocking(self, app: str, *args: str, alone: bool = False):
        """EXEC an application that holds the channel for a while (Dial, AudioSocket) in
        bridged mode: the call's actions go over AMI until it returns. `alone`: no other
        party is bridged to the call (AudioSocket): what an action sends goes to the
        call's own party."""
        self.bridged, self.alone = True, alone
        self.runner.bridged_changed(self)
        for command in self.drain():
            self.runner.run_bridged(self, command)
        try:
            return await self.raw.exec(app, *args)
        finally:
            self.bridged = self.alone = False
            self.runner.bridged_changed(self)

    def pending(self) -> list[dict]:
        return list(self._queue)

    def drain(self) -> list[dict]:
        out = list(self._queue)
        self._queue.clear()
        return out

    async def serve(self, *, preempting: bool = True) -> None:
        """Run queued commands in order; with preempting=False stop before the first play,
        speak, transfer or hangup (a paused play leaves those to the session's loop)."""
        while self._queue:
            if not preempting and self._queue[0].get("action") in PREEMPTING:
                return
            command = self._queue.popleft()
            if command.get("action") == "hangup":
                if self.on_hangup:
                    self.on_hangup(command.get("reason", "api"))
                await self.raw.hangup()
                raise AGIHangup("hangup requested")
            await self.runner.run(self, command)

    def preempted(self) -> bool:
        return any(c.get("action") in PREEMPTING for c in self._queue)

    # -- stoppable commands ------------------------------------------------------------------
    async def stream(self, filename: str, escape_digits: str = "",
                     offset: int | None = None) -> tuple[str, bool]:
        """STREAM FILE that a submit can stop: (key pressed or '', stopped by us)."""
        self._waiting = True
        try:
            key = await self.raw.play(filename, escape_digits, offset=offset)
        finally:
            self._waiting = False
        return key, self._stop is not None and await self._settle()

    async def wait(self, seconds: float) -> tuple[str, bool]:
        """WAIT FOR DIGIT that a submit can stop: (key or '', stopped by us)."""
        self._waiting = True
        try:
            key = await self.raw.wait_for_digit(seconds)
        finally:
            self._waiting = False
        sent = self._stop is not None and await self._settle()
        return key, sent and self.raw.stream_stopped

    async def ask(self, filename: str, escape_digits: str, seconds: float) -> tuple[str, bool]:
        """GET OPTION that a submit can stop: (key or '', stopped by us)."""
        self._waiting = self._asking = True
        self._answered.clear()
        try:
            key = await self.raw.ask(filename, escape_digits, seconds)
        finally:
            self._waiting = self._asking = False
            self._answered.set()
        return key, self._stop is not None and await self._settle()

    async def _settle(self) -> bool:
        """Whether a stop was sent (and Asterisk took it) while the command ran."""
        stop, self._stop = self._stop, None
        if stop is None:
            return False
        try:
            await stop
            return True
        except Exception as exc:       # AMI down: the queue waits for the next prompt/wait
            log.info("call %s: ControlPlayback not sent: %s", self.call_id, exc)
            return False

    async def play_media(self, filename: str, loop: int, escape_digits: str = "") -> tuple:
        """Play `filename` `loop` times (0: until something ends it). Returns
        (status, result): completed, or interrupted by a caller's key or another action."""
        plays, offset = 0, None
        while loop == 0 or plays < loop:
            key, stopped = await self.stream(filename, escape_digits, offset)
            if key:
                return "interrupted", {"by": "dtmf", "digit": key, "plays": plays}
            if stopped:
                if self.preempted():
                    return "interrupted", {"by": "action", "plays": plays}
                await self.serve(preempting=False)      # dtmf, record: then carry on
                offset = self.raw.last_endpos
                continue
            plays, offset = plays + 1, None
        return "completed", {"plays": plays}


class LiveChannel:
    """The Channel facade for code that holds the call: its prompts and waits serve the
    session's actions and then carry on. Everything else is the plain Channel's."""

    def __init__(self, session: CallSession):
        self._session = session
        self._ch = session.raw

    def __getattr__(self, name):
        return getattr(self._ch, name)

    async def exec(self, app: str, *args: str):
        if app == "Dial":                  # the IVR's transfers, the AI bridge
            return await self._session.dial(*args)
        return await self._ch.exec(app, *args)

    async def play(self, filename: str, escape_digits: str = "", offset: int | None = None):
        s = self._session
        while True:
            if s._queue:       # (checked here: most prompts have nothing to serve first)
                await s.serve()
            key, stopped = await s.stream(filename, escape_digits, offset)
            if key or not stopped:
                return key
            offset = self._ch.last_endpos        # resume the prompt where it stopped

    async def ask(self, filename: str, escape_digits: str, timeout: float) -> str:
        """A question (prompt, then `timeout` for the first key) as one GET OPTION. An
        action that stops it is served, then the question goes on where it was: a prompt
        stopped midway resumes from that sample (GET OPTION has no offset: STREAM FILE,
        then the wait), a wait cut short gets the time it had left (Channel.ask)."""
        s = self._session
        if s._queue:
            await s.serve()
        key, stopped = await s.ask(filename, escape_digits, timeout)
        if key:
            return key
        ch = self._ch
        if stopped and s.question_stops > 1:        # the first stop cut the prompt
            key = await self.play(filename, escape_digits, offset=ch.last_endpos)
            return key or await self._rest_of_wait(timeout, False)
        if ch.wait_left <= 0:
            return ""                               # the wait ran out
        return await self._rest_of_wait(ch.wait_left, stopped)

    async def _rest_of_wait(self, seconds: float, serve: bool) -> str:
        """The question's wait after its prompt was heard whole (served first if an action
        stopped it). A hangup here, the caller's or an action's, is HangupInWait: the
        path keeps the prompt the caller heard, as a question that ran out would."""
        deadline = time.monotonic() + seconds
        try:
            if serve:
                await self._session.serve()
            return await self.wait_for_digit(max(0.0, deadline - time.monotonic()))
        except HangupInWait:
            raise
        except AGIHangup as exc:
            raise HangupInWait(str(exc), self._ch.last_endpos) from None

    async def wait_for_digit(self, timeout: float) -> str:
        s = self._session
        if s._queue:
            await s.serve()
        deadline = time.monotonic() + timeout
        left = timeout
        while True:
            key, stopped = await s.wait(left)
            if key or not stopped:
                return key
            await s.serve()              # then wait for what was left of the time
            left = deadline - time.monotonic()
            if left <= 0:
                return ""


def _quiet(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()     # retrieved: a failed stop is reported by _settle, or moot
