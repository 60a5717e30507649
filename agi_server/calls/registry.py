"""The engine's calls: one dict of LiveCalls, the one writer of the Redis index the API reads.

    add / get / release     a call is known / looked up / over for us (released once it is
                            final and no AGI session holds it, whichever comes last)
    session(call, ch)       while the body runs, an AGI session holds the call: it takes
                            live-call actions, and Redis says so (`trunx:live:{call}`,
                            in-progress, then transferred once a transfer is answered)
    route(command)          an API command about a call (an action, or a hangup) to the
                            session holding it, or refused so the API's caller learns why
    upkeep                  the index written again (TTLs, a Redis that lost it) and
                            expired recordings purged

Index writes are batched, off the call's path: agi_server.calls.live_index.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agi_server.calls.actions import ActionRunner
from agi_server.calls.live_call import LiveCall
from agi_server.calls.session import CallSession
from trunx import recordings
from trunx.media import cache as media_cache
from trunx.models import iso, utcnow

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, config, db, redis, ami, webhooks, *, refresh: float = 30.0):
        self.config = config
        self._db = db
        self.ami = ami
        self.runner = ActionRunner(config, db, redis, ami, webhooks)
        self.index = self.runner.index       # the sessions, as Redis shows them to the API
        self.calls: dict[str, LiveCall] = {}
        # the same calls by their AGI channel's uniqueid, while a session holds them: AMI
        # events name channels, and an inbound call's id is not its channel's uniqueid
        self._by_channel: dict[str, LiveCall] = {}
        self.runner.session_for_channel = self.session_for_channel
        self.refresh = refresh
        self.purged = 0
        self._task: asyncio.Task | None = None

    # -- the calls ---------------------------------------------------------------------
    def add(self, call: LiveCall) -> LiveCall:
        return self.calls.setdefault(call.id, call)

    def get(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)

    def release(self, call: LiveCall) -> None:
        """Forget the call once it is final and no session holds it."""
        if call.final and call.session is None and self.calls.get(call.id) is call:
            del self.calls[call.id]
            call.cancel_timers()

    def session_for_channel(self, uniqueid: str):
        call = self._by_channel.get(uniqueid)
        return call.session if call is not None else None

    @property
    def sessions(self) -> dict[str, CallSession]:
        """The calls an AGI session holds now (they take actions)."""
        return {c.id: c.session for c in self.calls.values() if c.session is not None}

    def records(self) -> list:
        """The IVR records of the inbound calls in progress."""
        return [c.record for c in self.calls.values() if c.record is not None]

    # -- commands from the API ---------------------------------------------------------
    async def route(self, fields: dict) -> bool:
        """A command from the stream to the session holding its call. False when no
        session here holds it (an action is then refused; a hangup is the caller's)."""
        call = self.calls.get(fields.get("call", ""))
        s = call.session if call is not None else None
        if s is None or s.handed_off:
            if fields.get("action") != "hangup":
                await self.runner.refuse(fields, "call-not-in-progress",
                                         "the call is not in progress in this engine")
            return False
        s.submit(dict(fields))
        return True

    # -- sessions ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def session(self, call: LiveCall, ch, *, on_handoff=None, on_hangup=None):
        """Hold `call` as an action session while the body runs."""
        s = CallSession(call.id, call.account, call.direction, ch, ami=self.ami,
                        runner=self.runner, on_handoff=on_handoff, on_hangup=on_hangup,
                        recordings=call.recordings)
        self.add(call)
        call.session = s
        if s.uniqueid:
            self._by_channel[s.uniqueid] = call
        self.index.announce(call.id, call.account or "", {
            "account": call.account or "", "direction": call.direction,
            "status": "in-progress", "channel": s.channel_name,
            "from": call.from_number or "", "to": call.to_number or "",
            "since": iso(utcnow())}, time.time())
        try:
            yield s
        finally:
            call.session = None
            if self._by_channel.get(s.uniqueid) is call:
                del self._by_channel[s.uniqueid]
            self.index.withdraw(call.id)
            try:
                await self.runner.session_ended(s)
                self.release(call)
            finally:
                # the session and its LiveChannel point at each other: without this every
                # call leaves a reference cycle of ~15 objects for the collector, whose
                # gen-0 runs (7-25 ms at c=100) then sit in the slowest commands
                s.channel = None

    # -- upkeep ------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._upkeep(), name="live-calls")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.runner.drain()
        await self.index.flush()
        for call in self.calls.values():
            call.cancel_timers()

    async def purge(self) -> int:
        count = await self._db(recordings.purge_expired, self.config)
        self.purged += count
        await asyncio.to_thread(media_cache.purge, self.config)   # files only: no database
        return count

    async def _upkeep(self) -> None:
        next_purge = 0.0
        while True:
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + self.config.recording_purge_interval
                try:
                    await self.purge()
                except Exception:
                    log.exception("recording purge failed")
            await self.index.refresh()
            await asyncio.sleep(min(self.refresh, self.config.recording_purge_interval))
