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
import gc
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
from agi_server.calls import control
from agi_server.calls.intake import CommandReader
from agi_server.calls.live_call import INBOUND, LiveCall
from agi_server.calls.notify import CallNotifier
from agi_server.calls.outbound import OutboundRoute
from agi_server.calls.record import CallRecord, column_values, save_rows
from agi_server.calls.registry import Registry
from agi_server.health import HealthServer
from agi_server.ivr.runner import IvrRunner, Services
from agi_server.ivr.tree_cache import TreeCache, TreeUnavailable
from agi_server.metrics import EngineMetrics
from agi_server.webhooks import WebhookSender
from trunx import dnc, logs, redis_schema
from trunx.ivr import store as ivr_store
from trunx.ivr.program import Program
from trunx.models import Call
from trunx.phone import InvalidNumber, to_e164
from trunx.store import Store

log = logging.getLogger(__name__)


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
        self.dialer = Dialer(config, self._db, redis, self.ami, self.tracker)
        # commands from the API (actions, hangups) reach the calls through the registry
        self.commands = CommandReader(self._db, redis, self.tracker, self.registry)
        self.sockets = AudioSocketServer(config.audiosocket_host, config.audiosocket_port,
                                         config.audiosocket_address)
        self.outbound = OutboundRoute(config, self.tracker, self.registry, self.sockets)
        self.server = FastAGIServer(config, {"ivr": self.ivr_call, "outbound": self.outbound,
                                             "ai-transfer": self._ai_transfer})
        self.services = Services(config=config, suppress=self._suppress, redis=redis,
                                 db=self._db, bridge_agent=self._bridge_agent)
        self.records_saved = 0
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
        await self.commands.start()
        await self.dialer.start()

    async def stop(self) -> None:
        await asyncio.gather(self.dialer.stop(), self.commands.stop())
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
            call.status = "completed"
            self.registry.release(call)
            # one line a call, in its task: the JSON form carries call_id, account, node
            log.info("inbound call from %s to %s ended: %s (%s), %d steps", record.caller,
                     record.did, record.outcome, record.end_reason, len(record.path))
            self._save(record)      # Asterisk gets its socket closed without waiting for it

    async def _tree_for(self, record: CallRecord) -> Program | None:
        if record.did is None:
            record.finish("fallback", "no-called-number")
            return None
        try:
            tree = await self.cache.lookup(record.did)
        except TreeUnavailable as exc:
            self.metrics.redis_errors.labels("tree-lookup").inc()
            log.error("call %s on %s: tree store unavailable: %s", record.uniqueid,
                      record.did, exc)
            record.finish("fallback", "redis-unavailable")
            return None
        if tree is None:
            record.finish("fallback", "no-ivr-for-did")
        return tree

    def _save(self, record: CallRecord) -> None:
        """Queue the record for the writer; `stop` waits until all are written."""
        try:
            self._unsaved.append(column_values(record.row()))
        except Exception:       # never in place of what ended the call (we're in a finally)
            log.exception("call %s: its record could not be encoded", record.id)
            return
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_records())
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
        await ai_transfer.run_transfer(ch, self.config, redis=self.redis, db=self._db)

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
        await ai_bridge.run_ai_call(ch, call, self.config)
        row = await self._db(Call.get_or_none, Call.id == record.id)
        return (row.ai_result if row is not None else None) or {}


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
