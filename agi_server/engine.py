"""The engine: wires config, Redis, the database, the tree cache and the FastAGI server.

Dependencies are passed in (`Engine(config, redis, store=store)`: the asyncio Redis client
and the Store, trunx/store.py, with the database and the sync Redis client the database
thread uses); `__main__` builds them. Without a store, one is opened for `config` around
`sync_redis`.
SQLite writes (call records, suppressions) run on one dedicated thread, so the event loop
never blocks on the database and SQLite sees a single writer from this process. Call
records are group-committed: calls that end within `record_batch_delay` of each other, or
while a batch is being written, share one transaction, so the thread (and the GIL it
needs) is touched once per batch, not once per call.
"""
from __future__ import annotations

import asyncio
import json
import logging
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
from agi_server.calls.registry import Registry
from agi_server.cluster import reclaim
from agi_server.cluster.membership import Membership, engine_id
from agi_server.cluster.reclaim import Reclaimer
from agi_server.health import HealthServer
from agi_server.ivr.runner import IvrRunner, Services
from agi_server.ivr.tree_cache import TreeCache, TreeUnavailable
from agi_server.metrics import EngineMetrics
from agi_server.webhooks import WebhookSender
from trunx import dnc, logs, redis_schema
from trunx import ultravox_transfer as ai_transfer_target
from trunx.ivr import store as ivr_store
from trunx.ivr.program import Program
from trunx.models import Call
from trunx.phone import InvalidNumber, to_e164
from trunx.store import Store

log = logging.getLogger(__name__)

RETURN_WAIT = 30.0   # seconds an agent's caller may take from the REFER to the IVR route


class Engine:
    def __init__(self, config, redis, sync_redis=None, *, store: Store | None = None):
        self.config = config
        self.redis = redis              # redis.asyncio client: the hot path
        self.store = store if store is not None else Store.open(config, redis=sync_redis)
        self.sync_redis = self.store.redis    # blocking client for the database thread
        self.cache = TreeCache(redis, on_connect=self._heal_redis)
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix="trunx-db")
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
        self._unsaved: list[list] = []   # ended calls' column values, not written yet
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
        if resync:
            counts = await self._db(ivr_store.resync, self.store)
            log.info("resynced Redis from SQLite: %s", counts)
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

    def _entered(self, record: CallRecord) -> None:
        """The path so far into the call's live hash, with the next batch: if this engine
        dies, the one that closes the call as lost keeps it (agi_server.cluster.reclaim)."""
        self.registry.index.update(record.id, urgent=False, ivr=record.ivr_id or "",
                                   ivr_version=record.ivr_version or "",
                                   path=json.dumps(record.path, separators=(",", ":")))

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
        await asyncio.gather(self.dialer.stop(), self.commands.stop())
        await self._leave()
        await self.server.stop()
        await self.sockets.stop()
        await self.registry.stop()       # after the sessions: their recordings finish
        while self._writer is not None and not self._writer.done():
            await self._writer      # records of calls that ended during the stop
        await self.cache.stop()
        await self.ami.stop()
        await self.tracker.stop()
        await self.notify.drain()
        await self.webhooks.stop()
        if self.health is not None:
            await self.health.stop()
        self.db_thread.shutdown(wait=True)

    async def _heal_redis(self) -> None:
        """On each (re)connection: a Redis that lost its data is rebuilt from SQLite."""
        if not await self.redis.exists(redis_schema.SYNCED_KEY):
            counts = await self._db(ivr_store.resync, self.store)
            self.resyncs += 1
            log.warning("Redis had lost its data; resynced from SQLite: %s", counts)
        if self.registry.index.live:
            # a Redis that was away may have lost the index (restarted empty, a replica
            # that missed the last writes) or a batch written meanwhile: the live calls
            # are written again now, not at the registry's next upkeep (up to 30 s later)
            await self.registry.index.refresh()

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
            if program is None:
                await ch.answer()
                if (await control.play(ch, self.config.fallback_audio)).missing:
                    self.services.stats["prompt_missing"] += 1
                await ch.hangup()
                return
            record.account, record.ivr_id = program.account, program.ivr_id
            record.ivr_version = program.version
            call.account = record.account
            logs.bind(account_id=record.account)
            self.notify.started(record)
            await ch.answer()
            async with self.registry.session(call, ch,
                                             on_handoff=lambda at: _transferred(record)
                                             ) as session:
                await IvrRunner(session.channel, program, record, self.services).run()
        except AGIHangup:
            record.finish("caller-hangup")
        except BaseException:
            record.finish("error")
            raise
        finally:
            self._ended(call, record)

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

    def _save(self, record: CallRecord, *, final: bool = True) -> None:
        """Queue the record for the writer; `stop` waits until all are written."""
        try:
            values = column_values(record.row())
        except Exception:       # never in place of what ended the call (we're in a finally)
            log.exception("call %s: its record could not be encoded", record.id)
            return
        # one row per call in a batch (a record written twice: an agent's caller back in
        # the IVR); the later values are the whole record
        self._unsaved = [r for r in self._unsaved if r[0] != record.id]
        self._unsaved.append(values)
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_records())
        if not final:
            return
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
            if self.config.record_batch_delay > 0:
                await asyncio.sleep(self.config.record_batch_delay)
            batch, self._unsaved = self._unsaved, []
            try:
                await self._db(save_rows, self.store.db, batch)
                self.records_saved += len(batch)
                self._written(batch, True)
                continue
            except Exception:
                self.metrics.db_errors.labels("call-record").inc()
            for row in batch:      # one bad row must not cost the others theirs
                try:
                    await self._db(save_rows, self.store.db, [row])
                    self.records_saved += 1
                    self._written([row], True)
                except Exception:
                    log.exception("call %s: could not save its record", row[0])
                    self._written([row], False)

    def _written(self, rows: list[list], ok: bool) -> None:
        """Tell whoever waits for these calls' rows (the call.completed webhook)."""
        for row in rows:
            waiter = self._saved.pop(row[0], None)
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
            async with self.registry.session(call, ch,
                                             on_handoff=lambda at: _transferred(record)
                                             ) as session:
                await IvrRunner(session.channel, program, record, self.services).run(start)
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
        await self._db(save_rows, self.store.db, [early])
        moved = await ai_bridge.run_ai_call(ch, call, self.config)
        target = ai_transfer_target.from_sip_user(moved or "")
        if isinstance(target, tuple):
            self._returning[record.id] = record     # the `ai-transfer` route takes it on
            asyncio.get_running_loop().call_later(RETURN_WAIT, self._not_returned, record.id)
        row = await self._db(Call.get_or_none, Call.id == record.id)
        # the path says where as users write it (ivr:<ivr_id>#<node>, a number)
        return {**((row.ai_result if row is not None else None) or {}),
                "movedTo": ai_transfer_target.written(target) if target else moved}


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
