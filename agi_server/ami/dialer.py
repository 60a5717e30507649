"""The dialer: takes queued calls off the Redis stream and originates them, paced, each
account in turn (agi_server.ami.lanes: one account's backlog never holds back another's).

admin_api.voice.service.place_call puts a call's id and account on `trunx:originate` (and
in the visible queue, a sorted set the API reads the position from). The dialer reads the
stream with a consumer group, ahead into per-account lanes; an entry read but not finished
before a crash stays pending in the group and is read again at start. For each call:

1. takes the account's turn: under its `max_concurrent_calls` (on all engines), due at
   its own `calls_per_second`, then a slot of the pace all engines share
   (`originate_cps`, agi_server.cluster.pace); then picks the engine with the most free
   capacity (agi_server.cluster.membership): another engine gets the call on its own
   stream `trunx:originate-to:{engine}` and places it at once; this one waits for AMI;
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
from collections import deque

from agi_server.ami.client import AmiError, AmiUnavailable
from agi_server.ami.lanes import Lanes
from agi_server.background import ensure_group, keep_reading, stop_task, wait_or_stop
from agi_server.calls import control
from agi_server.cluster.limits import AccountLimits
from agi_server.cluster.pace import SharedPace
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


class CallNotTaken(Exception):
    """A queued call could not be taken now; its entry stays pending and is read again."""


class Dialer:
    def __init__(self, config, db, redis, ami, tracker, *,
                 consumer: str | None = None, membership=None, limits=None):
        self.config = config
        self._db = db
        self.redis = redis
        self.ami, self.tracker = ami, tracker
        self.consumer = consumer or f"{socket.gethostname()}"
        # several engines (agi_server.cluster): the shared pace, who takes the next call
        self.pace = SharedPace(redis, config.originate_cps)
        self.membership = membership
        self.limits = limits or AccountLimits(config, db)
        self.direct_stream = redis_schema.engine_originate_stream(self.consumer)
        self.ring_timeout = int(config.originate_timeout)
        self.originated = 0
        self.handed = 0                 # calls handed to another engine to place
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.lanes = Lanes()
        # calls handed to this engine (already paced and taken in turn): placed first.
        # (stream, entry id, call id): a dead engine's stream too, once reclaimed
        self.direct: deque[tuple[str, str, str | None]] = deque()
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
        self.direct = deque()
        await self._fill(pending=True)
        healthy()
        deferred, due = 0, CAP_RECHECK
        while not self._stopping.is_set():
            # read past any backlog before each call, so a newly queued account's call
            # takes its turn (agi_server.ami.lanes); block only when nothing waits
            await self._fill(pending=False, block=not self.lanes and not self.direct)
            if self.direct:
                stream, entry_id, call_id = self.direct.popleft()
                await self._take(stream, entry_id, call_id)
                continue
            item = self.lanes.take()
            if item is None:
                continue
            entry_id, call_id, account = item
            if call_id and not self._someone_ready():
                # no engine could place it now: wait for our AMI before taking a slot of
                # the pace, so the first calls after a (re)connect keep their spacing
                if not await wait_or_stop(self.ami.connected, self._stopping):
                    self.lanes.put_back(account, item)
                    continue
            wait = await self._turn(account) if call_id else None
            if wait is not None:
                # the account is at its max_concurrent_calls, or not due at its own
                # calls_per_second: its next call waits at the head of its lane; others
                # go meanwhile
                self.lanes.put_back(account, item)
                deferred, due = deferred + 1, min(due, wait)
                if deferred >= self.lanes.accounts:     # every waiting account waits
                    try:
                        await asyncio.wait_for(self._stopping.wait(), max(0.005, due))
                    except TimeoutError:
                        pass
                    deferred, due = 0, CAP_RECHECK
                continue
            deferred, due = 0, CAP_RECHECK
            await self._dispatch(entry_id, call_id, account)

    def _someone_ready(self) -> bool:
        return self.ami.connected.is_set() or bool(self.membership and self.membership.peers)

    async def _turn(self, account: str) -> float | None:
        """None when the account may place a call now (its pace slot is then reserved
        and waited for); else seconds until it might."""
        if not account:
            ok, wait = await self.pace.reserve("", 0.0)
        else:
            cap, cps = await self.limits.get(account)
            if cap > 0 and self.account_calls(account) >= cap:
                return CAP_RECHECK
            ok, wait = await self.pace.reserve(account, cps)
            if not ok:
                return wait
        if wait > 0:
            await asyncio.sleep(wait)
        return None

    def account_calls(self, account: str) -> int:
        """The account's outbound calls ringing or answered, on every engine."""
        here = sum(1 for c in self.tracker.outbound_calls()
                   if c.account == account and not c.final)
        return here + (self.membership.account_calls(account) if self.membership else 0)

    async def _dispatch(self, entry_id: str, call_id: str | None, account: str) -> None:
        """Place the call here, or hand it to the engine with the most free capacity."""
        target = self.consumer
        if call_id and self.membership is not None:
            target = self.membership.pick(self_ready=self.ami.connected.is_set()) \
                or self.consumer
        if target == self.consumer:
            await self._take(redis_schema.ORIGINATE_STREAM, entry_id, call_id)
            return
        # the XADD and the ACK in one MULTI: the call is in exactly one stream's hands
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(redis_schema.engine_originate_stream(target),
                  {"call": call_id, "account": account})
        pipe.xack(redis_schema.ORIGINATE_STREAM, redis_schema.ORIGINATE_GROUP, entry_id)
        pipe.xdel(redis_schema.ORIGINATE_STREAM, entry_id)
        await pipe.execute()
        self.handed += 1

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, redis_schema.ORIGINATE_STREAM,
                           redis_schema.ORIGINATE_GROUP)
        await ensure_group(self.redis, self.direct_stream, redis_schema.ORIGINATE_GROUP)

    async def _fill(self, pending: bool, block: bool = False) -> None:
        """Read entries into the lanes: this consumer's unfinished ones (pending: read
        before a restart and never acknowledged), or new ones, up to BUFFER_MAX held.
        Entries read stay pending in the group until placed, so a crash loses none.
        The calls handed to this engine come in the same read."""
        last = direct_last = "0" if pending else ">"
        while len(self.lanes) < BUFFER_MAX:
            reply = await self.redis.xreadgroup(
                redis_schema.ORIGINATE_GROUP, self.consumer,
                {redis_schema.ORIGINATE_STREAM: last, self.direct_stream: direct_last},
                count=READ_AHEAD, block=READ_BLOCK_MS if block and not pending else None)
            shared = []
            for stream, items in reply or []:
                if stream == self.direct_stream:
                    self.direct.extend((stream, entry_id, (fields or {}).get("call"))
                                       for entry_id, fields in items)
                    if pending and items:
                        direct_last = items[-1][0]
                    continue
                shared = items
            self.add_entries(shared)
            if len(shared) < READ_AHEAD:
                return
            if pending:
                last = shared[-1][0]        # pending entries after the last one read
            block = False

    def add_entries(self, entries) -> None:
        """Queued calls into their accounts' lanes (read, or reclaimed from a dead engine)."""
        for entry_id, fields in entries:
            fields = fields or {}
            account = fields.get("account", "")
            self.lanes.add(account, (entry_id, fields.get("call"), account))

    async def _take(self, stream: str, entry_id: str, call_id: str | None) -> None:
        if call_id:
            if not await wait_or_stop(self.ami.connected, self._stopping):
                return           # stopping: the entry stays pending for the next start
            await self._place(call_id)
        await self.redis.xack(stream, redis_schema.ORIGINATE_GROUP, entry_id)
        await self.redis.xdel(stream, entry_id)

    async def _place(self, call_id: str) -> None:
        row = await self._db(Call.get_or_none, Call.id == call_id)
        if row is None or row.status != "initiated" or self.tracker.get(call_id):
            await self.redis.zrem(redis_schema.ORIGINATE_QUEUE, call_id)
            return
        suppressed = await control.is_suppressed(row.account_id, row.to_number,
                                                 redis=self.redis, db=self._db)
        mark = redis_schema.originated_key(call_id)
        placed = await self._db(outbox.placed_before, call_id)
        if placed:
            # taken before (its `initiated` event is written before the Originate) by a
            # run whose mark a Redis that restarted empty has lost: never again
            await self.redis.set(mark, "sent", nx=True, ex=MARK_TTL)
        if not await self.redis.set(mark, "refused" if suppressed else "sent", nx=True,
                                    ex=MARK_TTL) and not await self._taken_unsent(
                                        row, mark, placed):
            return
        # which engine holds it: commands about it come here, and if this engine dies
        # another closes it (agi_server.cluster.reclaim)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(redis_schema.call_engine_key(call_id), self.consumer, ex=MARK_TTL)
        pipe.zrem(redis_schema.ORIGINATE_QUEUE, call_id)
        await pipe.execute()
        call = self.tracker.track(row)
        if not await self.tracker.announce(call, "initiated", ts_from_utc(row.created_at)):
            # no `initiated` event, no Originate: that is what lets a retry tell a take
            # that never sent the call from one that did (_taken_unsent)
            self.tracker.untrack(call)
            raise CallNotTaken(f"call {call_id}: its initiated event was not stored")
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

    async def _taken_unsent(self, row: Call, mark: str, placed: bool) -> bool:
        """The mark is set: True when it was set by a take that stopped before the call's
        `initiated` event (ours, cut off by a Redis failover that lost SET's reply, or a
        dead engine's whose queue entry we reclaimed), so the call was never sent and is
        placed now. Otherwise the call is sent or cancelled: never (again). The reconcile
        after a login finds out what became of one sent here; one another live engine
        sent is that engine's, and if it died the reclaim closes it."""
        call_id = row.id
        state = await self.redis.get(mark)       # "canceled" (a DELETE): never
        if state not in ("sent", "refused") or self.tracker.get(call_id) is not None:
            return False
        if await self.redis.get(redis_schema.call_engine_key(call_id)) not in (
                None, self.consumer):
            return False
        if not placed:     # ("refused": its number-suppressed end was not stored either)
            log.warning("call %s: its mark is set but it was never sent; placing it",
                        call_id)
            return True
        if state == "refused":
            return False
        log.warning("call %s was sent before; not originating it again", call_id)
        self.tracker.track(row).originated_login = 0
        await self.tracker.reconcile()
        return False

    def originate_fields(self, row: Call) -> list[tuple[str, object]]:
        return [
            ("Channel", control.dial_string(row.to_number, self.config.trunk_endpoint)),
            ("Context", ANSWERED_CONTEXT), ("Exten", "s"), ("Priority", "1"),
            ("CallerID", f"<{row.from_number}>"),
            ("Timeout", self.ring_timeout * 1000),
            ("Async", "true"),
            ("ChannelId", row.id),
        ]
