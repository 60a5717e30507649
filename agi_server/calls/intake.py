"""The engine's command stream: requests the API makes about calls the engine runs.

admin_api.voice.service.request_hangup XADDs {call, action: "hangup"} to `trunx:commands`.
One reader (a consumer group, so a request made while the engine was down is still served
at start) routes each to the call: a queued call is cancelled before it is ever placed (the SET NX
originated mark makes that race-free against the dialer); a ringing or live call is hung
up. Live-call actions (play, speak, dtmf, record, transfer) arrive the same way; they, and
a hangup for a call an AGI session holds without AMI tracking it (an inbound call), go to
the call's session (agi_server.calls.registry.Registry.route). With several engines each
reads the shared stream and its own, `trunx:commands:{engine}`, where the API sends the
commands for the calls that engine holds; so an engine never takes a command for a call
it does not hold.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict

from agi_server.background import ensure_group, keep_reading, stop_task
from trunx import redis_schema
from trunx.calls import ts_from_utc
from trunx.models import Call

log = logging.getLogger(__name__)

READ_BLOCK_MS = 500     # a stop waits at most this long for the read in flight
SEEN_MAX = 10_000       # command ids remembered, to take each once


class CommandReader:
    def __init__(self, db, redis, tracker, registry, *, consumer: str | None = None,
                 membership=None):
        self._db = db
        self.redis = redis
        self.tracker = tracker
        self.registry = registry          # agi_server.calls.registry.Registry: every live call
        self.consumer = consumer or socket.gethostname()
        # several engines: the API sends commands for a call to the stream of the engine
        # holding it (its live hash or trunx:call:{id}:engine names it); the shared
        # stream carries the rest (a queued call's cancel, which any engine may do)
        self.own_stream = redis_schema.engine_command_stream(self.consumer)
        self.membership = membership
        self.handled = 0
        self._seen: OrderedDict = OrderedDict()   # (action, id) of commands taken
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.on_redis_error = None      # the engine's metrics: the stream read failed

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-commands")

    async def stop(self) -> None:
        await stop_task(self._task, self._stopping)

    async def _run(self) -> None:
        await keep_reading("command stream", self._read, self._stopping, log,
                           lambda: self.on_redis_error and self.on_redis_error())

    async def _read(self, healthy) -> None:
        await ensure_group(self.redis, redis_schema.COMMAND_STREAM, redis_schema.COMMAND_GROUP)
        await ensure_group(self.redis, self.own_stream, redis_schema.COMMAND_GROUP)
        # this consumer's unfinished entries first, then new ones; this engine's own
        # stream (commands for calls it holds) and the shared one in the same read
        start = {redis_schema.COMMAND_STREAM: "0", self.own_stream: "0"}
        while not self._stopping.is_set():
            pending = "0" in start.values()
            reply = await self.redis.xreadgroup(
                redis_schema.COMMAND_GROUP, self.consumer, start, count=16,
                block=None if pending else READ_BLOCK_MS)
            read = {stream: items for stream, items in reply or []}
            for stream in start:
                if start[stream] == "0" and not read.get(stream):
                    start[stream] = ">"
            for stream, items in read.items():
                for entry_id, fields in items:
                    # when the API queued it (the entry id's milliseconds): action latency
                    fields = {**(fields or {}), "queued_ms": entry_id.split("-")[0]}
                    if stream == self.own_stream or not await self._forward(fields):
                        await self._handle(fields)
                    await self.redis.xack(stream, redis_schema.COMMAND_GROUP, entry_id)
                    await self.redis.xdel(stream, entry_id)
            healthy()

    async def _forward(self, fields: dict) -> bool:
        """A shared-stream command for a call another live engine holds (the API looked
        before that engine named itself): onto that engine's stream. True if forwarded."""
        call_id = fields.get("call", "")
        if (not call_id or self.tracker.get(call_id) is not None
                or self.registry.get(call_id) is not None):
            return False
        engine = await self.redis.get(redis_schema.call_engine_key(call_id))
        if not engine or engine == self.consumer or (
                self.membership is not None and not self.membership.alive(engine)):
            return False
        fields = {k: v for k, v in fields.items() if k != "queued_ms"}
        await self.redis.xadd(redis_schema.engine_command_stream(engine), fields)
        return True

    async def _handle(self, fields: dict) -> None:
        call_id, action = fields.get("call", ""), fields.get("action")
        if fields.get("id"):
            # a command is taken once: after Redis restarted empty, the database sends
            # again the commands it cannot know were taken (trunx/outbox.py rebuild)
            key = (action, fields["id"])
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        self.handled += 1
        if action != "hangup":
            await self.registry.route(dict(fields))
            return
        if self.tracker.get(call_id) is not None:
            await self.tracker.hangup(call_id, "api")
            return
        if self.registry.get(call_id) is not None:     # an inbound call in its session
            await self.registry.route(dict(fields))
            return
        # not placed yet: it never will be (the mark makes the dialer skip it)
        mark = redis_schema.originated_key(call_id)
        if await self.redis.set(mark, "canceled", nx=True, ex=7 * 24 * 3600):
            row = await self._db(Call.get_or_none, Call.id == call_id)
            if row is None or row.status != "initiated":
                return
            call = self.tracker.track(row)
            await self.tracker.announce(call, "initiated", ts_from_utc(row.created_at))
            await self.tracker.fail(call, "api")
        else:
            # sent a moment ago: the dialer registers it with the tracker first, so wait
            # for that briefly, then hang it up
            deadline = time.monotonic() + 2.0
            while self.tracker.get(call_id) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.tracker.get(call_id) is not None:
                await self.tracker.hangup(call_id, "api")
