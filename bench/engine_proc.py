"""trunx's engine in a process of its own, for the benchmarks.

    python -m bench.engine_proc --data-dir D --redis-url URL [--port P]
                                [--seed tree|demo] [--set NAME=VALUE ...]
                                [--loop asyncio|uvloop] [--without PART ...]

Wired as agi_server/__main__.py wires it (Engine(config, aioredis, store=store)), logging at
WARNING; --set overrides any other config field. --seed first creates an account (once
per data dir) with the IVR seed tree on +19495551234: "tree" as the engine tests do
(tests/engine_support.seed_account: prompts named, not staged), "demo" as the Asterisk
tests do (devtools.demo: prompts spoken by espeak-ng and staged into sounds_dir). It prints
{"port": ...} when it listens,
then answers JSON-line requests on stdin (see `_handle`) until stdin closes.

Per-command overhead is also measured inside the engine when asked ("timing"): from the
moment a read of the reply returned to the moment the next command was written, by a
subclass of agi_server.agi.server.AGISession that only adds clock readings (and when the
call's task resumed, and each collection's start and end, to say what a slow one was
made of; with "detail", the loop thread's and the database thread's CPU clocks too).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import sys
import time
from array import array

import redis
import redis.asyncio as aioredis

from agi_server.agi import server as server_module
from agi_server.engine import Engine, settle_heap
from bench.common import cpu_seconds, percentile, raise_nofile, rss_bytes, use_loop
from trunx import config as trunx_config
from trunx import db
from trunx.store import Store

# Samples go to flat arrays of floats: tuples would be objects the collector tracks, and
# would make it run more often, and longer, than it does without the measurement.
FIELDS = ("read", "resumed", "written", "cpu", "db_cpu", "n", "send")
# "detail" adds the two CPU clocks (about 1 us each: system calls, unlike perf_counter);
# the bench's published rows are measured without them.
TIMING: dict = {"on": False, "detail": False, "samples": {f: array("d") for f in FIELDS},
                "gc": [], "db_clock": None}
PROFILE: dict = {"prof": None}


class TimedSession(server_module.AGISession):
    """The engine's session plus three clock readings: when a read delivered data, when the
    call's task resumed from its command, and (via _Clock around its transport) when the
    next command was written. read -> resumed is the wait for the loop to get to the task
    (the rest of that loop turn: other calls' replies and their work, timers, the
    collector); resumed -> written is this call's own work for the command."""

    read_at: float | None = None
    resumed_at: float | None = None
    read_cpu = db_cpu = 0.0

    def connection_made(self, transport) -> None:
        super().connection_made(_Clock(self, transport))

    def data_received(self, data: bytes) -> None:
        self.read_at = time.perf_counter()
        if TIMING["detail"]:
            self.read_cpu, self.db_cpu = time.thread_time(), _db_cpu()
        super().data_received(data)

    async def command(self, line):
        event = await super().command(line)
        self.resumed_at = time.perf_counter()
        return event


class _Clock:
    """Wraps a session's transport.write to note the time of each write."""

    def __init__(self, session: TimedSession, transport):
        self._session, self._transport = session, transport

    def write(self, data) -> None:
        issued = time.perf_counter()
        self._transport.write(data)
        s = self._session
        # the first command follows the agi_* block and the DID lookup: left out, as the
        # emulator's own measurement leaves it out
        if TIMING["on"] and s.read_at is not None and s.commands > 1:
            now = time.perf_counter()
            cpu, db = (time.thread_time(), _db_cpu()) if TIMING["detail"] else (0.0, 0.0)
            out = TIMING["samples"]
            out["read"].append(s.read_at)
            out["resumed"].append(s.resumed_at or s.read_at)
            out["written"].append(now)
            out["cpu"].append(cpu - s.read_cpu)
            out["db_cpu"].append(db - s.db_cpu)
            out["n"].append(s.commands)
            out["send"].append(now - issued)
        s.read_at = s.resumed_at = None

    def __getattr__(self, name):
        return getattr(self._transport, name)


def _db_cpu() -> float:
    """CPU time the engine's database thread has used (0 when it has none yet)."""
    clock = TIMING["db_clock"]
    return 0.0 if clock is None else time.clock_gettime(clock)


def _find_db_clock(engine: Engine) -> None:
    threads = list(getattr(engine.db_thread, "_threads", ()))
    if threads and TIMING["db_clock"] is None:
        TIMING["db_clock"] = time.pthread_getcpuclockid(threads[0].ident)


def _gc_clock(phase: str, info: dict) -> None:
    """gc.callbacks: each collection's start and end while timing is on."""
    if TIMING["on"]:
        TIMING["gc"].append((phase == "start", info["generation"], time.perf_counter()))


def timing_summary(samples: dict, gc_events: list[tuple]) -> dict:
    """p50/p99 of read -> write, and what the slowest 1% were made of: the wait for the
    loop (read -> resumed) or the call's own work (resumed -> written); how much of the
    time the loop's thread was off the CPU (the OS ran something else, or the thread
    waited for the GIL) and how much CPU the database thread used meanwhile; and how
    many of them overlapped a collection."""
    rows = list(zip(*(samples[f] for f in FIELDS), strict=True))
    total = [(w - r) * 1000 for r, _, w, *_ in rows]
    out = {"samples": len(total), "p50_ms": percentile(total, 50),
           "p90_ms": percentile(total, 90), "p99_ms": percentile(total, 99),
           "max_ms": max(total) if total else None}
    if not rows:
        return out
    queue = [(m - r) * 1000 for r, m, _, *_ in rows]
    own = [(w - m) * 1000 for _, m, w, *_ in rows]
    send = [row[6] * 1000 for row in rows]
    before_send = [(row[2] - row[6] - row[0]) * 1000 for row in rows]
    out.update(queue_p50_ms=percentile(queue, 50), queue_p99_ms=percentile(queue, 99),
               own_p50_ms=percentile(own, 50), own_p99_ms=percentile(own, 99),
               send_p50_ms=percentile(send, 50), send_p99_ms=percentile(send, 99),
               to_send_p50_ms=percentile(before_send, 50),
               to_send_p99_ms=percentile(before_send, 99))
    if any(samples["cpu"]):       # the loop thread's own CPU per command: what load elsewhere
        cpu = [row[3] * 1000 for row in rows]        # on the machine does not change
        out.update(cpu_p50_ms=percentile(cpu, 50), cpu_p99_ms=percentile(cpu, 99))
    spans, started = [], {}
    for is_start, gen, t in gc_events:
        if is_start:
            started[gen] = t
        elif gen in started:
            spans.append((started.pop(gen), t, gen))
    by_gen: dict = {}
    for a, b, gen in spans:
        g = by_gen.setdefault(str(gen), {"count": 0, "ms": 0.0, "max_ms": 0.0})
        g["count"] += 1
        g["ms"] += (b - a) * 1000
        g["max_ms"] = max(g["max_ms"], (b - a) * 1000)
    out["gc"] = by_gen
    cut = out["p99_ms"]
    tail = [row for row in rows if (row[2] - row[0]) * 1000 >= cut]

    def mean(values) -> float:
        return sum(values) / len(tail) * 1000

    out["tail"] = {
        "samples": len(tail),
        "with_gc": sum(1 for r, _, w, *_ in tail if any(a < w and b > r for a, b, _ in spans)),
        "ms": mean(w - r for r, _, w, *_ in tail),
        "queue_ms": mean(m - r for r, m, *_ in tail),
        "own_ms": mean(w - m for _, m, w, *_ in tail),
        "send_ms": mean(row[6] for row in tail),
        "off_cpu_ms": mean(w - r - c for r, _, w, c, *_ in tail),
        "db_cpu_ms": mean(row[4] for row in tail)}
    if not any(samples["cpu"]):
        del out["tail"]["off_cpu_ms"], out["tail"]["db_cpu_ms"]     # not measured
    else:                         # by the command written (2: the second of the call, ...)
        by_n: dict = {}
        for r, _, w, c, _, n, _ in rows:
            by_n.setdefault(int(n), []).append(((w - r) * 1000, c * 1000))
        out["by_command"] = {n: {"samples": len(v),
                                 "p50_ms": percentile([x for x, _ in v], 50),
                                 "p99_ms": percentile([x for x, _ in v], 99),
                                 "cpu_p50_ms": percentile([c for _, c in v], 50),
                                 "cpu_p99_ms": percentile([c for _, c in v], 99)}
                             for n, v in sorted(by_n.items())}
    return out


class Sampler:
    """Peak concurrent sessions (the server's task set) and the RSS seen then. RSS is read
    (/proc, a few system calls) only at a new peak: read every tick, it stalled the loop
    20 times a second and showed up in the per-command p99 it was measuring."""

    def __init__(self, engine):
        self.engine = engine
        self.reset()

    def reset(self) -> None:
        self.peak, self.rss_at_peak, self.max_rss = 0, 0, 0

    async def run(self) -> None:
        pid = os.getpid()
        while True:
            n = self.engine.server.calls
            if n > self.peak:
                rss = rss_bytes(pid)
                self.max_rss = max(self.max_rss, rss)
                self.peak, self.rss_at_peak = n, rss
            await asyncio.sleep(0.05)


def _seed(cfg, how: str) -> None:
    from trunx.models import Account

    db.connect(cfg)
    if Account.select().count():
        return
    r = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    try:
        if how == "tree":
            from tests.engine_support import seed_account
            seed_account(cfg, r)
        else:
            from devtools.demo import publish_demo, stage_prompts
            account = Account.create(name="bench")
            stage_prompts(account, cfg)
            publish_demo(Store(db.connect(cfg), r), account, cfg)
    finally:
        r.close()


# Parts of the engine's per-call work that `--without` switches off, to measure what each
# costs (agi_bench's "where the time goes" table). Only the bench does this: the engine
# itself has no such switches.
PARTS = ("records", "index", "metrics", "notify", "session", "ivr")


def _switch_off(engine: Engine, parts: set[str]) -> None:
    import contextlib
    import types

    if "records" in parts:            # the call rows are built but never written
        async def forget():
            engine._unsaved.clear()
            for written in engine._start_rows.values():   # a call waits for its first row
                if not written.done():
                    written.set_result(True)
        engine._write_records = forget
    if "index" in parts:              # the live-call index in Redis
        engine.registry.index.announce = lambda *a, **k: None
        engine.registry.index.withdraw = lambda *a, **k: None
    if "metrics" in parts:
        engine.metrics.inbound_ended = lambda record: None
    if "notify" in parts:             # the call.started/completed webhook checks
        engine.notify.started = lambda record: None
        engine.notify.wants = lambda account: False
        engine.notify.forget = lambda call_id: None
    if "session" in parts:            # the live-call action session around the IVR
        @contextlib.asynccontextmanager
        async def bare_session(call, ch, **kw):
            yield types.SimpleNamespace(channel=ch)
        engine.registry.session = bare_session
    if "ivr" in parts:                # no tree, record or registry: the commands only
        from bench.baseline_agi import COMMANDS  # the sequence the baseline sends

        async def commands_only(ch):
            for line in COMMANDS:
                await ch.run(line)
        engine.server.routes["ivr"] = commands_only


def _writer_cpu(engine: Engine) -> float:
    pid = engine.sink.pid if engine.sink is not None else None
    if pid is None:
        return 0.0
    try:
        return cpu_seconds(pid)
    except FileNotFoundError:       # it died between two readings (it is restarted)
        return 0.0


def _handle(request: dict, engine: Engine, sampler: Sampler) -> dict:
    op = request["op"]
    pid = os.getpid()
    if op == "stats":
        return {"redis_reads": engine.cache.redis_reads, "server": dict(engine.server.stats),
                "live_batches": engine.registry.index.batches + engine.registry.index.failed,
                "records_saved": engine.records_saved, "sessions": engine.server.calls,
                "rss": rss_bytes(pid), "cpu": cpu_seconds(pid),
                # the record writer's own CPU (a child process: not in "cpu" above)
                "writer_cpu": _writer_cpu(engine),
                "writer_batches": engine.sink.batches if engine.sink is not None else None}
    if op == "peak":
        out = {"peak": sampler.peak, "rss_at_peak": sampler.rss_at_peak,
               "max_rss": sampler.max_rss}
        if request.get("reset"):
            sampler.reset()
        return out
    if op == "profile":
        # cProfile of the loop's thread while on: where the engine's CPU goes, by function
        # (bench/profiling.py reads the file; py-spy, when installed, samples all threads)
        if request.get("on"):
            PROFILE["prof"] = cProfile.Profile()
            PROFILE["prof"].enable()
            return {"on": True}
        prof, PROFILE["prof"] = PROFILE["prof"], None
        if prof is None:
            return {"error": "not profiling"}
        prof.disable()
        prof.dump_stats(request["path"])
        return {"path": request["path"]}
    if op == "timing":
        out = timing_summary(TIMING["samples"], TIMING["gc"])
        _find_db_clock(engine)
        TIMING["on"], TIMING["gc"] = bool(request.get("on")), []
        TIMING["detail"] = bool(request.get("detail"))
        TIMING["samples"] = {f: array("d") for f in FIELDS}
        return out
    return {"error": f"unknown op {op!r}"}


async def serve(args) -> None:
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        kind = trunx_config.Config.__dataclass_fields__[name].type
        overrides[name] = trunx_config._coerce(value, kind)
    # engine_http_port and audiosocket_port 0: engines run side by side here (and beside
    # other engines on the machine), each on free ports
    cfg = trunx_config.load(env={}, data_dir=args.data_dir, redis_url=args.redis_url,
                            agi_port=args.port,
                            **{"engine_http_port": 0, "audiosocket_port": 0, **overrides})
    if args.seed:
        _seed(cfg, args.seed)
    db.connect(cfg)
    aio = aioredis.Redis.from_url(cfg.redis_url, decode_responses=True)
    sync = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    engine = Engine(cfg, aio, sync)
    engine.server.session_class = TimedSession
    _switch_off(engine, set(args.without))
    await engine.start()
    await engine.cache.wait_listening()
    settle_heap()          # as agi_server/__main__.py does once the engine has started
    gc.callbacks.append(_gc_clock)
    sampler = Sampler(engine)
    sampler_task = asyncio.create_task(sampler.run())
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print(json.dumps({"port": engine.server.port, "pid": os.getpid()}), flush=True)
    while line := await stdin.readline():
        print(json.dumps(_handle(json.loads(line), engine, sampler)), flush=True)
    sampler_task.cancel()
    await engine.stop()
    await aio.aclose()
    sync.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_proc")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", choices=("tree", "demo"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--without", action="append", default=[], choices=PARTS,
                        help="switch a part of the per-call work off (measuring its cost)")
    args = parser.parse_args()
    raise_nofile()
    use_loop(args.loop)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
