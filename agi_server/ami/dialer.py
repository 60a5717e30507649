"""The dialer: takes queued calls off the Redis stream and originates them, paced, each
account in turn (agi_server.ami.lanes: one account's backlog never holds back another's).

admin_api.voice.service.place_call puts a call's id and account on `trunx:originate` (and
in the visible queue, a sorted set the API reads the position from). The dialer reads the
stream with a consumer group, ahead into per-account lanes; an entry read but not finished
before a crash stays pending in the group and is read again at start. For each call:

1. waits for AMI, then for its pacing slot (`originate_cps` calls per second);
2. skips the call unless it is still `initiated` (a DELETE may have cancelled it);
3. checks the DNC list again (it may have changed while the call waited);
4. marks the call originated with SET NX (as "refused" if the number is now suppressed):
   if the mark already exists the call was sent before (by a previous run) or cancelled
   by a DELETE (the command reader sets the mark too): it is never sent twice; nor is a
   call whose `initiated` CallEvent is in the database (written before the Originate),
   whose mark a Redis that restarted empty lost;
5. sends Originate PJSIP/<to>@<trunk_endpoint> into [trunx-outbound] with ChannelId = the
   call id, so the channel's Uniqueid names the call in every AMI event.

Why PJSIP/<to>@trunk and not Local/<to>@outbound: one channel per call, whose own states
are the call's (Ringing from the carrier's 180, Up on its 200, its hangup cause is the
carrier's), named by our id. A Local channel would add two halves to correlate, and the
ringing and cause of the real leg would have to be read through them. The API has checked
the number is E.164 already, which is all [outbound]'s patterns would add.

If AMI drops before Asterisk acknowledges the Originate, the call is not re-sent: the
tracker asks Asterisk after the reconnect whether its channel exists.
"""
from __future__ import annotations

import asyncio
import logging
import socket

from agi_server.ami.client import AmiError, AmiUnavailable
from agi_server.ami.lanes import Lanes
from agi_server.background import ensure_group, keep_reading, stop_task, wait_or_stop
from agi_server.calls import control
from trunx import outbox, redis_schema
from trunx.calls import ts_from_utc
from trunx.models import Call

log = logging.getLogger(__name__)

ANSWERED_CONTEXT = "trunx-outbound"
MARK_TTL = 7 * 24 * 3600
READ_BLOCK_MS = 500     # a stop waits at most this long for the read in flight
READ_AHEAD = 1000       # entries per read while looking past one account's backlog
BUFFER_MAX = 50_000     # queued calls held in the lanes at most
CAP_RECHECK = 0.2       # seconds between looks when every waiting account is at its cap


class Dialer:
    def __init__(self, config, db, redis, ami, tracker, *,
                 consumer: str | None = None):
        self.config = config
        self._db = db
        self.redis = redis
        self.ami, self.tracker = ami, tracker
        self.consumer = consumer or f"{socket.gethostname()}"
        self.cps = float(config.originate_cps)
        self.ring_timeout = int(config.originate_timeout)
        self.originated = 0
        self._next_slot = 0.0
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.lanes = Lanes()
        self.on_redis_error = None      # the engine's metrics: the stream read failed

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dialer")

    async def stop(self) -> None:
        await stop_task(self._task, self._stopping)

    async def _run(self) -> None:
        await keep_reading("dialer", self._dial, self._stopping, log,
                           lambda: self.on_redis_error and self.on_redis_error())

    async def _dial(self, healthy) -> None:
        await self._ensure_group()
        self.lanes = Lanes()         # anything read before a reconnect is read again
        await self._fill(pending=True)
        healthy()
        deferred = 0
        while not self._stopping.is_set():
            # read past any backlog before each call, so a newly queued account's call
            # takes its turn (agi_server.ami.lanes); block only when nothing waits
            await self._fill(pending=False, block=not self.lanes)
            item = self.lanes.take()
            if item is None:
                continue
            entry_id, call_id, account = item
            if self._at_cap(account):
                # the account has max_concurrent_calls ringing or answered: its next call
                # waits at the head of its lane; others go meanwhile
                self.lanes.put_back(account, item)
                deferred += 1
                if deferred >= self.lanes.accounts:     # every waiting account is capped
                    deferred = 0
                    try:
                        await asyncio.wait_for(self._stopping.wait(), CAP_RECHECK)
                    except TimeoutError:
                        pass
                continue
            deferred = 0
            await self._take(entry_id, call_id)

    def _at_cap(self, account: str) -> bool:
        cap = int(getattr(self.config, "max_concurrent_calls", 0) or 0)
        if not account or cap <= 0:
            return False
        live = sum(1 for c in self.tracker.outbound_calls()
                   if c.account == account and not c.final)
        return live >= cap

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, redis_schema.ORIGINATE_STREAM,
                           redis_schema.ORIGINATE_GROUP)

    async def _fill(self, pending: bool, block: bool = False) -> None:
        """Read entries into the lanes: this consumer's unfinished ones (pending: read
        before a restart and never acknowledged), or new ones, up to BUFFER_MAX held.
        Entries read stay pending in the group until placed, so a crash loses none."""
        last = "0" if pending else ">"
        while len(self.lanes) < BUFFER_MAX:
            reply = await self.redis.xreadgroup(
                redis_schema.ORIGINATE_GROUP, self.consumer,
                {redis_schema.ORIGINATE_STREAM: last}, count=READ_AHEAD,
                block=READ_BLOCK_MS if block and not pending else None)
            entries = [e for _, items in reply or [] for e in items]
            for entry_id, fields in entries:
                fields = fields or {}
                account = fields.get("account", "")
                self.lanes.add(account, (entry_id, fields.get("call"), account))
            if len(entries) < READ_AHEAD:
                return
            if pending:
                last = entries[-1][0]        # pending entries after the last one read
            block = False

    async def _take(self, entry_id: str, call_id: str | None) -> None:
        if call_id:
            if not await wait_or_stop(self.ami.connected, self._stopping):
                return           # stopping: the entry stays pending for the next start
            await self._pace()
            await self._place(call_id)
        await self.redis.xack(redis_schema.ORIGINATE_STREAM, redis_schema.ORIGINATE_GROUP,
                              entry_id)
        await self.redis.xdel(redis_schema.ORIGINATE_STREAM, entry_id)

    async def _pace(self) -> None:
        if self.cps <= 0:
            return
        loop = asyncio.get_running_loop()
        wait = self._next_slot - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_slot = max(loop.time(), self._next_slot) + 1.0 / self.cps

    async def _place(self, call_id: str) -> None:
        row = await self._db(Call.get_or_none, Call.id == call_id)
        if row is None or row.status != "initiated" or self.tracker.get(call_id):
            await self.redis.zrem(redis_schema.ORIGINATE_QUEUE, call_id)
            return
        suppressed = await control.is_suppressed(row.account_id, row.to_number,
                                                 redis=self.redis, db=self._db)
        mark = redis_schema.originated_key(call_id)
        if await self._db(outbox.placed_before, call_id):
            # taken before (its `initiated` event is written before the Originate) by a
            # run whose mark a Redis that restarted empty has lost: never again
            await self.redis.set(mark, "sent", nx=True, ex=MARK_TTL)
        if not await self.redis.set(mark, "refused" if suppressed else "sent", nx=True,
                                    ex=MARK_TTL):
            # sent before (a previous run) or cancelled by a DELETE: never (again). The
            # reconcile after a login finds out what became of a sent one.
            if await self.redis.get(mark) == "sent" and self.tracker.get(call_id) is None:
                log.warning("call %s was sent before; not originating it again", call_id)
                self.tracker.track(row).originated_login = 0
                await self.tracker.reconcile()
            return
        await self.redis.zrem(redis_schema.ORIGINATE_QUEUE, call_id)
        call = self.tracker.track(row)
        await self.tracker.announce(call, "initiated", ts_from_utc(row.created_at))
        if suppressed:
            await self.tracker.fail(call, "number-suppressed")
            return
        try:
            fields = self.originate_fields(row)
        except ValueError as exc:      # a number or endpoint Asterisk must never see
            log.error("call %s: not originated: %s", call_id, exc)
            await self.tracker.fail(call, "invalid-number")
            return
        call.originated_login = self.ami.stats["logins"]
        try:
            await self.ami.action("Originate", fields)
            self.originated += 1
        except AmiError as exc:
            log.error("call %s: Originate refused: %s", call_id, exc)
            await self.tracker.fail(call, "originate-error")
        except AmiUnavailable as exc:
            # Asterisk may or may not have it. Not re-sent: the reconcile after the next
            # login looks for its channel. No reply while connected means a dead link.
            log.warning("call %s: Originate unconfirmed (%s)", call_id, exc)
            if self.ami.connected.is_set():
                self.ami.abort()

    def originate_fields(self, row: Call) -> list[tuple[str, object]]:
        return [
            ("Channel", control.dial_string(row.to_number, self.config.trunk_endpoint)),
            ("Context", ANSWERED_CONTEXT), ("Exten", "s"), ("Priority", "1"),
            ("CallerID", f"<{row.from_number}>"),
            ("Timeout", self.ring_timeout * 1000),
            ("Async", "true"),
            ("ChannelId", row.id),
        ]
