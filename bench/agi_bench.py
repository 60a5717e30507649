"""Engine vs baseline over FastAGI, with emulated Asterisk channels (issue 6, part 2).

Three processes: trunx's engine (bench.engine_proc) or the panoramisk baseline
(bench.baseline_agi), and the load generator (bench.loadgen), each started afresh where
it matters. The walk is the seed tree's: answer, ask (GET OPTION: prompt and wait), route,
ask, play, hangup (bench.baseline_agi.COMMANDS, checked against the engine): the caller
lets each question's prompt play out and presses 1, then 2, in its wait.

Measurements of the two sides are interleaved and each is taken `repeat` times, keeping
the best, because this machine may be shared with other work while the bench runs; the
server's CPU time per session is reported too, as it depends much less on that.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time

import redis

from bench import profiling
from bench.agi_emulator import Scenario, run_session
from bench.baseline_agi import COMMANDS
from bench.common import Child, have_uvloop, run_json
from devtools.stack import RedisServer
from trunx.config import Config

HOST = "127.0.0.1"
KEYS = ["", "1", "", "2"]     # a prompt plays out, its wait takes 1; again, 2
EXPECT = list(COMMANDS)
LEVELS = (1, 10, 100, 1000)
# The loop trunx's engine ships on (agi_event_loop); the baseline runs on the same one, and
# all three servers run again on the other loop at c=100.
SHIPPED_LOOP = Config().agi_event_loop
OTHER_LOOP = "asyncio" if SHIPPED_LOOP == "uvloop" else "uvloop"
# 100 calls in progress at a caller's pace: each reply to a command that plays a prompt or
# waits for a key comes 0.25-0.75 s after it (bench.loadgen "prompt_delay"), so the engine
# holds 100 calls without being saturated (real prompts are longer still: seconds)
PACED_CALLS, PROMPT_DELAY = 100, 0.5
# The hold run's engine is started with this agi_max_sessions (shipped: 2,000), above the
# calls it is asked to hold, so it measures holding calls rather than the cap
HOLD_MAX_SESSIONS = 10_000


def _scenario(**kw) -> dict:
    return {"keys": KEYS, **kw}


def redis_commands(client) -> dict[str, int]:
    """Commands Redis has executed so far by name (INFO commandstats), INFO left out."""
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()
            if k != "cmdstat_info"}


def check_sequence(port: int) -> list[str]:
    """One session with the stream-based emulator itself (bench.agi_emulator.run_session)."""
    result = asyncio.run(run_session(HOST, port, Scenario(keys=KEYS)))
    if result.error:
        raise RuntimeError(f"emulated call failed: {result.error}")
    return result.commands


class Side:
    """One server process under test and how to read it."""

    def __init__(self, name: str, child: Child):
        self.name, self.child = name, child
        self.port = child.ready["port"]

    def rate(self, concurrency: int, duration: float, warmup: float,
             prompt_delay: float = 0.0) -> dict:
        st0 = self.child.ask("stats")
        t0 = time.perf_counter()
        result = run_json("bench.loadgen", {
            "mode": "rate", "host": HOST, "port": self.port, "concurrency": concurrency,
            "duration": duration, "warmup": warmup, "scenario": _scenario(),
            "expect": EXPECT, "prompt_delay": prompt_delay})
        wall = time.perf_counter() - t0
        st1 = self.child.ask("stats")
        cpu = st1["cpu"] - st0["cpu"]
        # CPU per session over the whole run (warm-up and drain included) divided by the
        # sessions over the whole run, estimated from the measured rate
        total = max(1.0, result["sessions_per_s"] * (wall - 0.3))
        result["server_cpu_ms_per_session"] = cpu / total * 1000
        if "writer_cpu" in st0:     # the engine's record writer, a process of its own
            writer = st1["writer_cpu"] - st0["writer_cpu"]
            result["writer_cpu_ms_per_session"] = max(0.0, writer) / total * 1000
        result["server_cpu_share"] = cpu / wall
        return result


def _start_engine(tmp: str, redis_url: str, tag: str, loop: str = SHIPPED_LOOP,
                  without: tuple = (), settings: tuple = ()) -> Side:
    data = os.path.join(tmp, f"data-{tag}")
    child = Child("bench.engine_proc", "--data-dir", data, "--redis-url", redis_url,
                  "--seed", "tree", "--loop", loop,
                  *[a for part in without for a in ("--without", part)],
                  *[a for item in settings for a in ("--set", item)],
                  stderr_path=os.path.join(tmp, f"engine-{tag}.log"))
    return Side("engine", child)


def _start_baseline(tmp: str, tag: str, loop: str = SHIPPED_LOOP,
                    kind: str = "panoramisk") -> Side:
    name = "baseline" if kind == "panoramisk" else kind
    return Side(name, Child("bench.baseline_agi", "--loop", loop, "--kind", kind,
                            stderr_path=os.path.join(tmp, f"{name}-{tag}.log")))


def hold(side: Side, sessions: int, delay: float, ramp: float) -> dict:
    idle = side.child.ask("stats")["rss"]
    side.child.ask("peak", reset=True)
    result = run_json("bench.loadgen", {
        "mode": "hold", "host": HOST, "port": side.port, "sessions": sessions, "ramp": ramp,
        "scenario": _scenario(reply_delay=delay), "expect": EXPECT},
        timeout=120 + sessions * delay * 0.05)
    peak = side.child.ask("peak")
    result["server_stats"] = side.child.ask("stats").get("server")
    result["server_peak_sessions"] = peak["peak"]
    result["rss_idle"] = idle
    result["rss_at_peak"] = peak["rss_at_peak"]
    result["rss_per_session"] = ((peak["rss_at_peak"] - idle) / peak["peak"]
                                 if peak["peak"] else None)
    return result


# "Where the time goes": the engine at c=100 with one part of its per-call work switched
# off at a time (bench.engine_proc --without), beside the whole engine, interleaved; and
# once with its records written on its own database thread (record_writer = thread), as
# before the record writer process.
ABLATIONS = (((), "everything on (as shipped)", ()),
             (("records",), "without writing call records", ()),
             ((), "records on the engine's database thread (`record_writer = thread`)",
              ("record_writer=thread",)),
             (("index",), "without the live-call index (Redis)", ()),
             (("metrics", "notify"), "without metrics and the webhook checks", ()),
             (("session",), "without the live-call action session", ()),
             (("ivr",), "the AGI commands only: no tree, record, registry or checks", ()))


def parts_cost(tmp: str, redis_url: str, duration: float, warmup: float, log=print,
               repeat: int = 2, ablations=ABLATIONS) -> list[dict]:
    sides = [(_start_engine(tmp, redis_url, f"parts{i}", without=w, settings=st), w, label)
             for i, (w, label, st) in enumerate(ablations)]
    out = [{"without": list(w), "label": label, "cpu": [], "writer_cpu": []}
           for _, w, label in sides]
    try:
        for side, _, _ in sides:
            check_sequence(side.port)
            side.rate(100, max(duration / 2, 0.5), 0.2)     # warm: caches, SQLite, the loop
        for attempt in range(repeat):
            order = list(enumerate(sides))
            for i, (side, w, _label) in order if attempt % 2 == 0 else order[::-1]:
                r = side.rate(100, duration, warmup)
                out[i]["cpu"].append(r["server_cpu_ms_per_session"])
                out[i]["writer_cpu"].append(r.get("writer_cpu_ms_per_session", 0.0))
                log(f"  agi c=100  engine {'-' + '-'.join(w) if w else _label:16.16} "
                    f"cpu={r['server_cpu_ms_per_session']:.2f} ms/session, record writer "
                    f"{r.get('writer_cpu_ms_per_session', 0.0):.2f}")
    finally:
        for side, _, _ in sides:
            side.child.close()
    for row in out:
        row["cpu_ms"] = min(row["cpu"])
        # the writer's CPU in the run whose engine CPU is kept
        row["writer_cpu_ms"] = row["writer_cpu"][row["cpu"].index(row["cpu_ms"])]
    return out


def run(*, duration: float = 4.0, warmup: float = 1.0, repeat: int = 2,
        hold_sessions: int = 5000, hold_delay: float = 2.5, levels=LEVELS,
        log=print) -> dict:
    out: dict = {"levels": list(levels), "rate": {}, "expect": EXPECT}
    with tempfile.TemporaryDirectory(prefix="trunx-bench-") as tmp, \
            RedisServer(tmp) as rs:
        client = redis.Redis.from_url(rs.url, decode_responses=True)
        engine = _start_engine(tmp, rs.url, "rate")
        base = _start_baseline(tmp, "rate")
        try:
            out["sequence"] = {"engine": check_sequence(engine.port),
                               "baseline": check_sequence(base.port)}
            for c in levels:
                runs: dict[str, list[dict]] = {"engine": [], "baseline": []}
                for attempt in range(repeat):
                    for side in (engine, base) if attempt % 2 == 0 else (base, engine):
                        hot = side is engine and c == 100 and "redis" not in out
                        if hot:
                            st0 = engine.child.ask("stats")
                            cmds0 = redis_commands(client)
                        r = side.rate(c, duration, warmup)
                        if hot:
                            cmds1 = redis_commands(client)
                            st1 = engine.child.ask("stats")
                            out["redis"] = {
                                "calls": st1["server"]["calls"] - st0["server"]["calls"],
                                "cache_reads": st1["redis_reads"] - st0["redis_reads"],
                                "live_batches": st1["live_batches"] - st0["live_batches"],
                                "commands": sum(cmds1.values()) - sum(cmds0.values()),
                                "by_command": {k: n - cmds0.get(k, 0) for k, n in cmds1.items()
                                               if n != cmds0.get(k, 0)},
                                "seconds": duration + warmup, "concurrency": c}
                        writer = (f" (+{r['writer_cpu_ms_per_session']:.2f} writer)"
                                  if "writer_cpu_ms_per_session" in r else "")
                        log(f"  agi c={c:<4} {side.name:8} {r['sessions_per_s']:7.0f}/s "
                            f"ok={r['ok']}/{r['sessions']} "
                            f"cpu={r['server_cpu_ms_per_session']:.2f} ms/session{writer} "
                            f"loadgen={r['loadgen_cpu_share']:.0%}")
                        runs[side.name].append(r)
                best = {}
                for name, rs_ in runs.items():
                    top = max(rs_, key=lambda x: x["sessions_per_s"])
                    best[name] = {**top, "all_rates": [x["sessions_per_s"] for x in rs_],
                                  "all_ok": all(x["ok"] == x["sessions"] for x in rs_)}
                out["rate"][c] = best
            # where the engine's time goes at c=100
            spy = profiling.pyspy_start(engine.child.pid, duration + warmup,
                                        os.path.join(tmp, "engine-c100.raw"))
            if spy is not None:
                engine.rate(100, duration, warmup)
                spy.wait()
                out["profile"] = profiling.summarize_raw(os.path.join(tmp, "engine-c100.raw"))
            # per-command overhead, measured at c=1 by the emulator and inside the engine
            engine.child.ask("timing", on=True)
            r = engine.rate(1, duration, warmup)
            r["inside_engine"] = engine.child.ask("timing", on=False)
            out["overhead"] = {"engine": r, "baseline": base.rate(1, duration, warmup)}
            log(f"  overhead c=1 engine p99={r['overhead']['p99_ms']:.3f} ms "
                f"(inside {r['inside_engine']['p99_ms']:.3f} ms), baseline "
                f"p99={out['overhead']['baseline']['overhead']['p99_ms']:.3f} ms")
            # ... and at c=100, where a command's reply waits behind the other calls' work
            engine.child.ask("timing", on=True)
            engine.rate(100, duration, warmup)
            out["overhead"]["engine_c100"] = engine.child.ask("timing", on=False)
            # ... and with 100 calls in progress at a caller's pace: the engine's latency
            # when it is not saturated
            # (with the CPU clocks, about 2 us a command: the wall clock here depends on
            # what else the machine runs while the engine idles between replies)
            engine.child.ask("timing", on=True, detail=True)
            r = engine.rate(PACED_CALLS, 2 * duration, 2 * PROMPT_DELAY, PROMPT_DELAY)
            out["overhead"]["engine_paced"] = {**r,
                                               "inside_engine": engine.child.ask("timing")}
            log(f"  overhead {PACED_CALLS} calls paced engine p99 inside="
                f"{out['overhead']['engine_paced']['inside_engine']['p99_ms']:.3f} ms "
                f"ok={r['ok']}/{r['sessions']} cpu={r['server_cpu_share']:.0%} of a core")
            out["engine_stats"] = engine.child.ask("stats")
        finally:
            engine.child.close()
            base.child.close()
        out["loadgen_loop"] = "uvloop" if have_uvloop() else "asyncio"
        # c=100 on each loop: the floor (bench.baseline_agi --kind floor) on both, and the
        # two servers again on the loop they were not measured on above
        out["loop"] = SHIPPED_LOOP
        out["loops"] = {SHIPPED_LOOP: {"engine": out["rate"][100]["engine"],
                                       "baseline": out["rate"][100]["baseline"]},
                        OTHER_LOOP: {}}
        for loop in (SHIPPED_LOOP, OTHER_LOOP):
            starts = [lambda lp=loop: _start_baseline(tmp, f"floor-{lp}", lp, "floor")]
            if loop == OTHER_LOOP:
                starts += [lambda lp=loop: _start_engine(tmp, rs.url, lp, lp),
                           lambda lp=loop: _start_baseline(tmp, lp, lp)]
            for start in starts:
                side = start()
                try:
                    r = side.rate(100, duration, warmup)
                    out["loops"][loop][side.name] = r
                    log(f"  agi c=100  {side.name:8} {r['sessions_per_s']:7.0f}/s on {loop} "
                        f"cpu={r['server_cpu_ms_per_session']:.2f} ms/session")
                finally:
                    side.child.close()
        out["parts"] = parts_cost(tmp, rs.url, duration, warmup, log)
        # holding: fresh processes, so RSS is not inflated by the rate runs
        out["hold"] = {}
        out["hold_max_sessions"], out["hold_delay"] = HOLD_MAX_SESSIONS, hold_delay
        for start in (lambda: _start_engine(tmp, rs.url, "hold",
                                            settings=(f"agi_max_sessions={HOLD_MAX_SESSIONS}",)),
                      lambda: _start_baseline(tmp, "hold")):
            side = start()
            try:
                check_sequence(side.port)     # warm: the first call fills the cache
                r = hold(side, hold_sessions, hold_delay, ramp=2.0)
                log(f"  hold {side.name:8} ok={r['ok']}/{r['sessions']} peak="
                    f"{r['server_peak_sessions']} rss/session="
                    f"{(r['rss_per_session'] or 0) / 1024:.1f} KiB")
                out["hold"][side.name] = r
            finally:
                side.child.close()
        client.close()
    return out
