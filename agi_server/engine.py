"""The engine: wires config, Redis, the database, the tree cache and the FastAGI server.

Dependencies are passed in (`Engine(config, redis, store=store)`: the asyncio Redis client
and the Store, trunx/store.py, with the database and the sync Redis client the database
thread uses); `__main__` builds them. Without a store, one is opened for `config` around
`sync_redis`.
Database work (suppressions, reads, the rare write) runs on one dedicated thread, so the
event loop never blocks on the database. Call records go to the record writer, a child
process the engine owns (agi_server/calls/record_sink.py; `record_writer = thread` keeps
them on that thread): the SQL, its JSON and its commits run outside this process, which
keeps encoding the rows and handing them over. Either way they are group-committed:
calls that end within `record_batch_delay` of each other, or while a batch is being
written, share one transaction, touched once per batch, not once per call.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from agi_server.agi.errors import AGIHangup
from agi_server.agi.server import FastAGIServer
from agi_server.ai import bridge as ai_bridge
from agi_server.ai import cold_transfer as ai_transfer
from agi_server.amd.audiosocket import AudioSocketServer
from agi_server.ami.client import AmiConnection
from agi_server.ami.dialer import Dialer
from agi_server.ami.tracker import CallTracker
from agi_server.background import stop_task
from agi_server.calls import control
from agi_server.calls.intake import CommandReader
from agi_server.calls.live_call import INBOUND, LiveCall
from agi_server.calls.notify import CallNotifier
from agi_server.calls.outbound import OutboundRoute
from agi_server.calls.record import CallRecord, column_values, save_rows
from agi_server.calls.record_sink import RecordSink
from agi_server.calls.registry import Registry
from agi_server.cluster import reclaim
from agi_server.cluster.membership import Membership, engine_id
from agi_server.cluster.reclaim import Reclaimer
from agi_server.health import HealthServer
from agi_server.ivr.runner import IvrRunner, Services
from agi_server.ivr.tree_cache import TreeCache, TreeUnavailable
from agi_server.metrics import EngineMetrics
from agi_server.outbox import OutboxSweeper
from agi_server.webhooks import WebhookSender
from trunx import dnc, logs, outbox, redis_schema
from trunx import ultravox_transfer as ai_transfer_target
from trunx.ivr import store as ivr_store
from trunx.ivr.program import Program
from trunx.models import Call
from trunx.phone import InvalidNumber, to_e164
from trunx.store import Store

log = logging.getLogger(__name__)

RETURN_WAIT = 30.0   # seconds an agent's caller may take from the REFER to the IVR route
START_ROW_WAIT = 2.0     # seconds a call waits at most for its first row before ANSWER


class Engine:
    def __init__(self, config, redis, sync_redis=None, *, store: Store | None = None):
        self.config = config
        self.redis = redis              # redis.asyncio client: the hot path
        self.store = store if store is not None else Store.open(config, redis=sync_redis)
        self.sync_redis = self.store.redis    # blocking client for the database thread
        self.cache = TreeCache(redis, on_connect=self._heal_redis)
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix="trunx-db")
        # call rows: to the record writer process, or on the database thread
        self.sink = RecordSink(config) if config.record_writer == "process" else None
        self.ami = AmiConnection(config)
        self.webhooks = WebhookSender(config, self._db)
        # every live call, inbound and outbound: one LiveCall each, one registry
        self.registry = Registry(config, self._db, redis, self.ami, self.webhooks)
        # outbound calls: status from AMI events, the dialer
        self.tracker = CallTracker(config, self._db, self.ami, redis, self.webhooks,
                                   self.registry, database=self.store.db)
        # this engine among others (docs/operators.md): its id names its streams, its
        # calls in the live index, and its heartbeat with free capacity
        self.engine_id = engine_id(config)
        self.tracker.engine = self.registry.index.engine = self.engine_id
        self.membership = Membership(config, redis, self.engine_id, self._load)
        self.dialer = Dialer(config, self._db, redis, self.ami, self.tracker,
                             consumer=self.engine_id, membership=self.membership)
        # commands from the API (actions, hangups) reach the calls through the registry
        self.commands = CommandReader(self._db, redis, self.tracker, self.registry,
                                      consumer=self.engine_id, membership=self.membership)
        self.reclaimer = Reclaimer(self._db, redis, self.membership, self.dialer,
                                   self.tracker, self.registry.runner)
        self._cluster: asyncio.Task | None = None
        self._cluster_stop = asyncio.Event()
        self.sockets = AudioSocketServer(config.audiosocket_host, config.audiosocket_port,
                                         config.audiosocket_address)
        self.outbound = OutboundRoute(config, self.tracker, self.registry, self.sockets)
        self.server = FastAGIServer(config, {"ivr": self.ivr_call, "outbound": self.outbound,
                                             "ai-transfer": self._ai_transfer})
        self.services = Services(config=config, suppress=self._suppress, redis=redis,
                                 db=self._db, bridge_agent=self._bridge_agent,
                                 entered=self._entered)
        self.records_saved = 0
        # IVR records whose caller an AI agent sends back to an IVR node: the `ai-transfer`
        # route picks the record up (a few seconds at most; dropped if the caller hangs up
        # first, bounded by the calls bridged to agents at once)
        self._returning: dict[str, CallRecord] = {}
        # call id -> (column values, True) of an ended call, or (its CallRecord, False)
        # for a call in progress, whose row is taken when the batch is written: rows not
        # written yet; a call's later row takes the place of an earlier one still waiting
        self._unsaved: dict[str, tuple[list | CallRecord, bool]] = {}
        self._checkpointed: dict[str, int] = {}    # call id -> path length last written
        self._start_rows: dict[str, asyncio.Future] = {}   # call id -> first row written
        self._flush = asyncio.Event()       # a first row waits: the writer stops waiting
        self._checkpoints: asyncio.Task | None = None
        self.outbox = OutboxSweeper(config, self._db, self.store)
        self._writer: asyncio.Task | None = None
        self.resyncs = 0                         # times Redis was found empty and rebuilt
        # watching it run: metrics, the health listener, webhooks about inbound calls and
        # recordings (docs/observability.md)
        self.metrics = EngineMetrics()
        self.notify = CallNotifier(config, self._db, self.webhooks)
        self._saved: dict[str, asyncio.Future] = {}   # call id -> its row was written
        self.health = (HealthServer(self, config.engine_http_host, config.engine_http_port)
                       if config.engine_http_port >= 0 else None)
        self.tracker.on_final = self.metrics.outbound_ended
        self.tracker.on_db_error = lambda where: self.metrics.db_errors.labels(where).inc()
        self.registry.runner.metrics = self.metrics
        self.commands.on_redis_error = self.metrics.redis_errors.labels("command-stream").inc
        self.dialer.on_redis_error = self.metrics.redis_errors.labels("originate-stream").inc
        self.registry.runner.recorder.on_ready = self.notify.recording_ready
        self.metrics.watch(self)

    def live_records(self) -> list[CallRecord]:
        """The IVR records of the inbound calls in progress."""
        return self.registry.records()

    async def start(self, *, resync: bool = True) -> None:
        # the writer's child opens the database while this process resyncs Redis
        writer = asyncio.create_task(self.sink.start()) if self.sink is not None else None
        try:
            if resync:
                await self._db(self._resync)
        finally:
            if writer is not None:
                await writer
        await self.cache.start()
        await self.server.start()
        log.info("FastAGI listening on %s:%s", self.config.agi_host, self.server.port)
        await self.sockets.start()
        if self.health is not None:
            await self.health.start()
        await self.webhooks.start()
        await self.tracker.start()
        try:
            await self.tracker.adopt()      # before the dialer: calls a previous run placed
        except Exception:
            log.exception("unfinished outbound calls not adopted")
        await self.ami.start()          # connects in the background, and keeps reconnecting
        await self.registry.start()
        try:
            await self.membership.beat()     # named and counted before taking any work
        except Exception as exc:
            log.warning("engine heartbeat not written: %s", exc)
        self._cluster = asyncio.create_task(
            reclaim.watch(self.membership, self.reclaimer, self._cluster_stop,
                          self.config.engine_heartbeat), name="engine-heartbeat")
        await self.commands.start()
        await self.dialer.start()
        await self.outbox.start()
        if self.config.record_checkpoint_interval > 0:
            self._checkpoints = asyncio.create_task(self._checkpoint_loop(),
                                                    name="record-checkpoints")

    def _entered(self, record: CallRecord) -> None:
        """The path so far into the call's live hash, with the next batch: if this engine
        dies, the one that closes the call as lost keeps it (agi_server.cluster.reclaim)."""
        self.registry.index.update(record.id, urgent=False, ivr=record.ivr_id or "",
                                   ivr_version=record.ivr_version or "",
                                   path=_PathJson(record))

    def _load(self) -> tuple[int, dict[str, int]]:
        """Calls this engine holds, and its outbound calls ringing or answered by account."""
        accounts: dict[str, int] = {}
        for call in self.tracker.outbound_calls():
            if not call.final and call.account:
                accounts[call.account] = accounts.get(call.account, 0) + 1
        return len(self.registry.calls), accounts

    async def _leave(self) -> None:
        """A clean stop: out of the spread at once (no free capacity), but alive until the
        heartbeat expires, so a restart within `engine_dead_after` takes back its own
        queued calls and nobody closes its calls as lost; after that the others take over
        (agi_server.cluster.reclaim)."""
        await stop_task(self._cluster, self._cluster_stop)
        try:
            await self.redis.hset(redis_schema.engine_key(self.engine_id), "free", 0)
        except Exception as exc:
            log.warning("engine heartbeat not withdrawn: %s", exc)

    async def stop(self) -> None:
        self._returning.clear()      # (their rows are written; no timer acts on them now)
        await asyncio.gather(self.dialer.stop(), self.commands.stop(), self.outbox.stop())
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            await asyncio.gather(self._checkpoints, return_exceptions=True)
        await self._leave()
        await self.server.stop()
        await self.sockets.stop()
        await self.registry.stop()       # after the sessions: their recordings finish
        while self._writer is not None and not self._writer.done():
            await self._writer      # records of calls that ended during the stop
        if self.sink is not None:
            await self.sink.stop()      # every batch committed, and the child exited
        await self.cache.stop()
        await self.ami.stop()
        await self.tracker.stop()
        await self.notify.drain()
        await self.webhooks.stop()
        if self.health is not None:
            await self.health.stop()
        self.db_thread.shutdown(wait=True)

    async def _heal_redis(self) -> None:
        """On each (re)connection: a Redis that lost its data is rebuilt from SQLite: the
        calls in flight first (queued calls, placed marks, actions: trunx/outbox.py),
        then the trees, whose resync sets the marker that says it is done."""
        if not await self.redis.exists(redis_schema.SYNCED_KEY):
            calls = await self._db(outbox.rebuild, self.sync_redis)
            log.warning("Redis had lost its data; calls in flight back: %s", calls)
            counts = await self._db(ivr_store.resync, self.store)
            self.resyncs += 1
            log.warning("Redis had lost its data; resynced from SQLite: %s", counts)
        if self.registry.index.live:
            # a Redis that was away may have lost the index (restarted empty, a replica
            # that missed the last writes) or a batch written meanwhile: the live calls
            # are written again now, not at the registry's next upkeep (up to 30 s later)
            await self.registry.index.refresh()

    def _resync(self) -> None:
        """Blocking, at start: Redis from the database; a Redis with nothing of ours (a
        first start, or it restarted empty) gets the calls in flight back first."""
        if not self.sync_redis.exists(redis_schema.SYNCED_KEY):
            counts = outbox.rebuild(self.sync_redis)
            log.info("Redis has no data of ours: calls in flight back from the database: %s",
                     counts)
        log.info("resynced Redis from SQLite: %s", ivr_store.resync(self.store))

    async def _db(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    async def db_ping(self) -> None:
        """The database answers a query (readiness)."""
        await self._db(lambda: self.store.db.execute_sql("SELECT 1").fetchone())

    # -- the ivr route ----------------------------------------------------------------
    async def ivr_call(self, ch) -> None:
        env = ch.env
        record = CallRecord(did=_called_number(env), caller=_caller(env),
                            uniqueid=env.get("agi_uniqueid"), channel=env.get("agi_channel"))
        logs.bind(call_id=record.id)        # this call's task: every log line carries it
        call = self.registry.add(LiveCall(
            id=record.id, account=None, direction=INBOUND, from_number=record.caller,
            to_number=record.did, status="answered", channel=record.channel, record=record))
        try:
            program = await self._tree_for(record)
            if program is not None:
                record.account, record.ivr_id = program.account, program.ivr_id
                record.ivr_version = program.version
            await self._row_before_answer(record)
            if program is None:
                await ch.answer()
                if (await control.play(ch, self.config.fallback_audio)).missing:
                    self.services.stats["prompt_missing"] += 1
                await ch.hangup()
                return
            call.account = record.account
            logs.bind(account_id=record.account)
            self.notify.started(record)
            await ch.answer()
            await self._walk(ch, call, program, record)
        except AGIHangup:
            record.finish("caller-hangup")
        except BaseException:
            record.finish("error")
            raise
        finally:
            self._ended(call, record)

    async def _walk(self, ch, call: LiveCall, program: Program, record: CallRecord,
                    start: str | None = None) -> None:
        """The IVR program on the caller's channel, inside the call's live-call session
        (actions from the API reach it there), from the entry or from `start`."""
        async with self.registry.session(call, ch,
                                         on_handoff=lambda at: _transferred(record)
                                         ) as session:
            await IvrRunner(session.channel, program, record, self.services).run(start)

    def _ended(self, call: LiveCall, record: CallRecord) -> None:
        call.status = "completed"
        self.registry.release(call)
        # one line a call, in its task: the JSON form carries call_id, account, node
        log.info("inbound call from %s to %s ended: %s (%s), %d steps", record.caller,
                 record.did, record.outcome, record.end_reason, len(record.path))
        # Asterisk gets its socket closed without waiting for the write. A caller an AI
        # agent sends back to an IVR node goes on on this record (`_ai_to_ivr`): written
        # now all the same, but counted and announced once, when it really ends.
        self._save(record, final=record.id not in self._returning)

    async def _tree_for(self, record: CallRecord) -> Program | None:
        if record.did is None:
            record.finish("fallback", "no-called-number")
            return None
        try:
            tree, stale = await self.cache.serve(record.did)
        except TreeUnavailable as exc:
            self.metrics.redis_errors.labels("tree-lookup").inc()
            log.error("call %s on %s: tree store unavailable: %s", record.uniqueid,
                      record.did, exc)
            record.finish("fallback", "redis-unavailable")
            return None
        if stale:       # Redis away: the last-known tree, said so in the path (docs/engine.md)
            self.metrics.redis_errors.labels("tree-lookup").inc()
            self.metrics.trees_stale.inc()
            record.step(tree.entry, "tree-stale", version=tree.version)
        if tree is None:
            record.finish("fallback", "no-ivr-for-did")
        return tree

    async def _row_before_answer(self, record: CallRecord) -> None:
        """The call's row is committed before Asterisk hears ANSWER, so an engine killed
        at any moment leaves every call it answered with its row. The writer does not
        wait out `record_batch_delay` for it: it waits only for the batch in flight, so
        under load calls starting together still share a transaction. A database slower
        than START_ROW_WAIT does not hold the caller: the call goes on, its row queued."""
        loop = asyncio.get_running_loop()
        written = self._start_rows[record.id] = loop.create_future()
        # a timer resolving the same future (None), not wait_for: that is a task a call
        timer = loop.call_later(START_ROW_WAIT, _time_up, written)
        self._queue_live(record)
        self._flush.set()
        try:
            if await written is None:
                log.warning("call %s: its first row not written within %.0f s; answering",
                            record.id, START_ROW_WAIT)
        finally:
            timer.cancel()
            self._start_rows.pop(record.id, None)

    def _queue_live(self, record: CallRecord) -> None:
        """Queue the row of a call in progress. Its values are taken when the writer takes
        the batch (with the path by then), and not at all if the call ended meanwhile (its
        final row takes the place): a short call costs one row, as before."""
        self._unsaved.setdefault(record.id, (record, False))
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_records())

    async def _checkpoint_loop(self) -> None:
        """Every `record_checkpoint_interval`: the rows of the calls in progress whose
        path grew, in the writer's next batch (one transaction for all of them)."""
        while True:
            await asyncio.sleep(self.config.record_checkpoint_interval)
            self.checkpoint()

    def checkpoint(self) -> int:
        written, queued = {}, 0
        for record in self.registry.records():
            if record.outcome is not None:
                continue        # ending: its final row comes next
            written[record.id] = len(record.path)
            if self._checkpointed.get(record.id) != len(record.path):
                self._queue_live(record)
                queued += 1
        self._checkpointed = written
        return queued

    def _save(self, record: CallRecord, *, final: bool = True) -> None:
        """Queue the record's final row for the writer; `stop` waits until all are written.
        Not final: a caller an AI agent sends back to an IVR node goes on on this record
        (`_ai_to_ivr`); its row is written as a call in progress, and the call is counted
        and announced once, when it really ends."""
        if not final:
            self._unsaved.pop(record.id, None)
            self._queue_live(record)
            return
        try:
            row = record.row()
            self._unsaved[record.id] = (row if self.sink is not None else column_values(row),
                                        True)
        except Exception:       # never in place of what ended the call (we're in a finally)
            log.exception("call %s: its record could not be encoded", record.id)
            return
        self._wake_writer()
        loop = asyncio.get_running_loop()
        try:       # (the writer runs at the next await: the waiter is registered first)
            self.metrics.inbound_ended(record)
            if self.notify.wants(record.account):
                saved = self._saved[record.id] = loop.create_future()
                self.notify.completed(record, saved)
            else:
                self.notify.forget(record.id)
        except Exception:
            log.exception("call %s: not counted, or its webhook not sent", record.id)

    async def _write_records(self) -> None:
        """Group commit: everything that ended while the last batch was written, or
        within `record_batch_delay` of the first of them."""
        while self._unsaved:
            if self.config.record_batch_delay > 0 and not self._start_rows:
                # cut short by a call waiting for its first row (_row_before_answer)
                self._flush.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush.wait(), self.config.record_batch_delay)
            # the record writer process encodes the rows (JSON, defaults) itself: the
            # engine sends them as dicts; on the database thread they go encoded
            encode = self.sink is None
            batch = [(v, final) for v, final in (_encoded(item, encode)
                                                 for item in self._unsaved.values())
                     if v is not None]
            self._unsaved = {}
            try:
                await self._store_rows([row for row, _ in batch])
                self._written(batch, True)
                continue
            except Exception:
                self.metrics.db_errors.labels("call-record").inc()
            for row, final in batch:      # one bad row must not cost the others theirs
                try:
                    await self._store_rows([row])
                    self._written([(row, final)], True)
                except Exception:
                    log.exception("call %s: could not save its record", _row_id(row))
                    self._written([(row, final)], False)

    async def _store_rows(self, rows: list) -> None:
        """Rows committed (Call row dicts or their column values, as save_rows takes
        them), by the record writer or on the database thread; raises if they were not."""
        if self.sink is not None:
            await self.sink.save(rows)
        else:
            await self._db(save_rows, self.store.db, rows)

    def _written(self, rows: list[tuple[list | dict, bool]], ok: bool) -> None:
        """Count the final rows and tell whoever waits for them (call.completed)."""
        for row, final in rows:
            call_id = _row_id(row)
            if not final:
                started = self._start_rows.get(call_id)
                if started is not None and not started.done():
                    started.set_result(ok)
                continue
            self.records_saved += ok
            waiter = self._saved.pop(call_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ok)

    # -- services the runner uses -----------------------------------------------------
    async def _suppress(self, record: CallRecord, node: str) -> bool:
        if not record.caller or record.account is None:
            return False
        await self._db(lambda: dnc.suppress(
            record.account, record.caller, source="ivr", redis=self.sync_redis,
            call_id=record.id, did=record.did, node=node, ivr_id=record.ivr_id))
        return True

    async def _ai_transfer(self, ch) -> None:
        """An AI agent's cold transfer of its caller (agi_server/ai/cold_transfer.py)."""
        await ai_transfer.run_transfer(ch, self.config, redis=self.redis, db=self._db,
                                       to_ivr=self._ai_to_ivr)

    async def _ai_to_ivr(self, ch, call_id: str, account: str, target: tuple) -> None:
        """An agent's coldTransfer to `ivr:<ivr_id>#<node>`: the caller's walk resumes at
        that node, on the call's own record (the path goes on after the agent's steps with
        `returned`). The record is the one the IVR session left when the agent moved its
        caller (`_returning`). The target IVR's current version runs, or the call's pinned
        one when it is the IVR the call came through. A target gone since the agent was
        saved does not drop the caller: the walk resumes at that IVR's entry (or the
        call's own IVR's), the step saying why."""
        record = self._returning.pop(call_id, None)
        written = ai_transfer_target.written(target)
        if record is None or record.account != account:
            # an outbound agent call has no IVR walk to resume (docs/ai.md)
            await ai_transfer.refuse(ch, self._db, call_id, written, "no-ivr-call")
            return
        ivr_id, node = target
        program, reason = await ai_transfer.return_program(self.cache, record, ivr_id, node)
        if program is None:
            await ai_transfer.refuse(ch, self._db, call_id, written, reason)
            return
        start = node if reason is None else program.entry
        record.outcome = record.end_reason = None
        record.step(start, "returned", ivr=program.ivr_id, version=program.version,
                    **({"asked": written, "reason": reason} if reason else {}))
        await self._db(ai_transfer.note, call_id, {"to": written, "status": "returned",
                                                    **({"reason": reason} if reason else {})})
        logs.bind(call_id=record.id, account_id=record.account)
        call = self.registry.add(LiveCall(
            id=record.id, account=record.account, direction=INBOUND,
            from_number=record.caller, to_number=record.did, status="answered",
            channel=ch.env.get("agi_channel"), record=record))
        try:
            await self._walk(ch, call, program, record, start)
        except AGIHangup:
            record.finish("caller-hangup")
        except BaseException:
            record.finish("error")
            raise
        finally:
            self._ended(call, record)

    def _not_returned(self, call_id: str) -> None:
        """The caller never reached the `ai-transfer` route (hung up on the way): the
        record written when the IVR session ended is final; count and announce it."""
        record = self._returning.pop(call_id, None)
        if record is not None:
            self._save(record)


    async def _bridge_agent(self, ch, record: CallRecord, agent_id: str) -> dict:
        """An IVR caller meets an AI agent. The call's row is written now (the bridge
        stores its result on it; the final save keeps that). The IVR path stays in the
        record; the `metadata` here reaches Ultravox (as metadata and as the prompt's
        template variables) only in the outgoing flow (docs/ai.md)."""
        entered = [p["node"] for p in record.path if p["event"] == "enter"]
        digits = [p["digits"] for p in record.path if p["event"] == "digits"]
        call = {"id": record.id, "account": record.account, "agent_id": agent_id, "ai": None,
                "from_number": record.caller, "to_number": record.did, "max_duration": None,
                "metadata": {"trunxSource": "ivr", "trunxDid": record.did or "",
                             "trunxCaller": record.caller or "",
                             "trunxIvr": f"{record.ivr_id} v{record.ivr_version}",
                             "trunxPath": ">".join(entered), "trunxDigits": ",".join(digits)}}
        early = {**record.row(), "status": "answered", "ended_at": None, "duration": None}
        await self._store_rows([column_values(early)])
        moved = await ai_bridge.run_ai_call(ch, call, self.config)
        target = ai_transfer_target.from_sip_user(moved or "")
        if isinstance(target, tuple):
            self._returning[record.id] = record     # the `ai-transfer` route takes it on
            asyncio.get_running_loop().call_later(RETURN_WAIT, self._not_returned, record.id)
        row = await self._db(Call.get_or_none, Call.id == record.id)
        # the path says where as users write it (ivr:<ivr_id>#<node>, a number)
        return {**((row.ai_result if row is not None else None) or {}),
                "movedTo": ai_transfer_target.written(target) if target else moved}


def _encoded(item: tuple, encode: bool = True) -> tuple[list | dict | None, bool]:
    """A queued row (its column values, or with `encode` False the row dict); a call in
    progress's taken now."""
    value, final = item
    if final:
        return value, final
    try:
        row = value.live_row()
        return (column_values(row) if encode else row), final
    except Exception:
        log.exception("call %s: its row could not be encoded", value.id)
        return None, final


def _row_id(row: list | dict) -> str:
    return row["id"] if type(row) is dict else row[0]


# gen0 collections every 20,000 net allocations instead of 700: a call allocates a few
# dozen tracked objects that outlive gen0 (its task, record, session), so at the default
# the collector ran about every 10 calls and walked them again; measured in the bench's
# in-process run: 80 us of GC per call -> 23 (docs/benchmarks.md, "where the time goes")
GC_THRESHOLD = (20_000, 50, 1_000)
# How long a thread waiting for the GIL lets its holder run before forcing a switch (Python's
# default is 5 ms). The database thread takes the GIL between SQLite calls and drops it at
# the next one; at 5 ms, its waits forced the loop's thread to hand the GIL over and back
# far more often, and each forced hand-off is futex calls and cold caches. Measured at 50 ms,
# interleaved with the default: CPU per call 1.3-1.5 vs 2.6 ms at c=1 and 0.80-1.16 vs
# 1.12-1.63 ms at c=100, p99 per command inside the engine 0.21-0.31 vs 0.30-0.35 ms at c=1
# (docs/benchmarks.md, "where the time goes").
SWITCH_INTERVAL = 0.05


def settle_heap() -> None:
    """Once the engine has started: what is alive now (modules, config, compiled trees,
    the metrics) lives as long as the process, so it is moved out of the collector's
    sight (gc.freeze) and the collector runs less often (cycles are still collected); and
    the GIL changes hands less often (SWITCH_INTERVAL)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL)


def loop_factory(name: str):
    """The event loop the engine runs on (`agi_event_loop`), for asyncio.Runner. uvloop
    (libuv, in C) spends far less CPU per socket event than asyncio's own loop; the
    benchmarks (docs/benchmarks.md) run both."""
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name == "asyncio":
        return None
    raise ValueError(f"agi_event_loop must be uvloop or asyncio, not {name!r}")


async def _transferred(record: CallRecord) -> None:
    record.finish("transferred")


def _time_up(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _PathJson:
    """A call's path as the live index writes it: encoded when its batch is (str()), so a
    call that ends first, or moves on several nodes in one batch, encodes it once or never."""
    __slots__ = ("record",)

    def __init__(self, record: CallRecord):
        self.record = record

    def __str__(self) -> str:
        return json.dumps(self.record.path, separators=(",", ":"))


def _called_number(env: dict) -> str | None:
    for key in ("agi_extension", "agi_dnid"):
        try:
            return to_e164(env.get(key, ""))
        except InvalidNumber:
            continue
    return None


def _caller(env: dict) -> str | None:
    try:
        return to_e164(env.get("agi_callerid", ""))
    except InvalidNumber:
        return None
