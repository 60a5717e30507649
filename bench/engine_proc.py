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
subclass of agi_server.agi.server.AGISession that only adds two clock readings.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import sys
import time

import redis
import redis.asyncio as aioredis

from agi_server.agi import server as server_module
from agi_server.engine import Engine, settle_heap
from bench.common import cpu_seconds, percentile, raise_nofile, rss_bytes, use_loop
from trunx import config as trunx_config
from trunx import db
from trunx.store import Store

TIMING = {"on": False, "samples": []}
PROFILE: dict = {"prof": None}


class TimedSession(server_module.AGISession):
    """The engine's session plus two clock readings: when a read delivered data, and (via
    _Clock around its transport) when the next command was written."""

    read_at: float | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(_Clock(self, transport))

    def data_received(self, data: bytes) -> None:
        self.read_at = time.perf_counter()
        super().data_received(data)


class _Clock:
    """Wraps a session's transport.write to note the time of each write."""

    def __init__(self, session: TimedSession, transport):
        self._session, self._transport = session, transport

    def write(self, data) -> None:
        self._transport.write(data)
        s = self._session
        # the first command follows the agi_* block and the DID lookup: left out, as the
        # emulator's own measurement leaves it out
        if TIMING["on"] and s.read_at is not None and s.commands > 1:
            TIMING["samples"].append(time.perf_counter() - s.read_at)
        s.read_at = None

    def __getattr__(self, name):
        return getattr(self._transport, name)


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

    from agi_server.agi import commands as c
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
    if "ivr" in parts:                # no tree, record or registry: the 7 commands only
        lines = [c.answer(), c.stream_file("welcome", "0123456789*#"), c.wait_for_digit(5000),
                 c.stream_file("business_check", "0123456789*#"), c.wait_for_digit(5000),
                 c.stream_file("not_qualified", ""), c.hangup()]

        async def seven(ch):
            for line in lines:
                await ch.run(line)
        engine.server.routes["ivr"] = seven


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
        samples = TIMING["samples"]
        ms = [x * 1000 for x in samples]
        out = {"samples": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}
        TIMING["on"], TIMING["samples"] = bool(request.get("on")), []
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
