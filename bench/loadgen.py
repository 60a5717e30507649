"""The load generator: many emulated Asterisk channels at once against one FastAGI server.

Each session is bench.agi_emulator's peer (same agi_* block, same replies from the same
`reply_for`, same HANGUP line, same overhead measurement: from writing a reply to reading
the next command), written as an asyncio Protocol instead of on streams so that one
Python process can drive thousands of sessions a second without becoming the bottleneck.
`python -m bench.loadgen` reads one job (JSON) on stdin and prints one result (JSON):

    {"mode": "rate", "host", "port", "concurrency", "duration", "warmup", "scenario", "expect",
     "loop": "asyncio" | "uvloop" (default: uvloop when installed)}
        closed loop: `concurrency` callers each start a new session as soon as theirs ends;
        sessions that end inside the measured window count. With "prompt_delay" (seconds)
        the reply to each command that plays or waits for a key (STREAM FILE, GET OPTION,
        WAIT FOR DIGIT, GET DATA) comes after a time drawn evenly from 0.5x to 1.5x that, as
        a prompt would take, and the callers' first calls are spread over one such time:
        the calls are in progress together at a caller's pace instead of saturating the
        server.
    {"mode": "hold", "host", "port", "sessions", "ramp", "scenario", "expect"}
        open `sessions` sessions over `ramp` seconds (scenario.reply_delay keeps them
        open), wait for every one to end, and count those that walked the expected path.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict

from bench.agi_emulator import Scenario, _env, _Keys, reply_for
from bench.common import have_uvloop, percentile, raise_nofile, use_loop

_ids = itertools.count(1)
# the commands whose reply, on a real channel, comes once a prompt played or a key came
PROMPT_VERBS = ("STREAM FILE", "GET OPTION", "WAIT FOR DIGIT", "GET DATA")


class Caller(asyncio.Protocol):
    """One emulated channel: the agi_emulator.run_session peer as a Protocol."""

    def __init__(self, scenario: Scenario, loop: asyncio.AbstractEventLoop,
                 prompt_delay: float = 0.0, rng: random.Random | None = None):
        self.s = scenario
        self.prompt_delay, self.rng = prompt_delay, rng
        self.loop = loop
        self.keys = _Keys(scenario.keys)
        self.commands: list[str] = []
        self.overheads: list[float] = []
        self.done: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._replied_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(_env(self.s, next(_ids)))
        self._replied_at = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buf += data
        while True:
            cut = self._buf.find(b"\n")
            if cut < 0:
                return
            line, self._buf = self._buf[:cut].decode(), self._buf[cut + 1:]
            self.overheads.append(now - self._replied_at)
            self.commands.append(line)
            if self.prompt_delay and line.startswith(PROMPT_VERBS):
                self.loop.call_later(self.prompt_delay * (0.5 + self.rng.random()),
                                     self._answer, line)
            elif self.s.reply_delay:
                self.loop.call_later(self.s.reply_delay, self._answer, line)
            else:
                self._answer(line)

    def _answer(self, line: str) -> None:
        if self.transport.is_closing():
            return
        reply, hang = reply_for(line, self.keys, self.s)
        if self.s.hangup_after is not None and len(self.commands) > self.s.hangup_after:
            reply, hang = "200 result=-1", True
        self.transport.write(reply.encode() + (b"\nHANGUP\n" if hang else b"\n"))
        self._replied_at = time.perf_counter()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(None if exc is None else str(exc))


async def one_session(host: str, port: int, scenario: Scenario,
                      connect_timeout: float = 30.0, prompt_delay: float = 0.0,
                      rng: random.Random | None = None) -> tuple[Caller | None, str | None]:
    loop = asyncio.get_running_loop()
    caller = Caller(scenario, loop, prompt_delay, rng)
    try:
        await asyncio.wait_for(loop.create_connection(lambda: caller, host, port),
                               connect_timeout)
    except (TimeoutError, OSError) as exc:
        return None, f"connect: {type(exc).__name__}: {exc}"
    error = await caller.done
    return caller, error


def _summary(overheads: list[float]) -> dict:
    ms = [x * 1000 for x in overheads]
    return {"samples": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


async def run_rate(job: dict) -> dict:
    scenario = Scenario(**job["scenario"])
    expect = job.get("expect")
    host, port, conc = job["host"], job["port"], job["concurrency"]
    warmup, duration = job.get("warmup", 1.0), job["duration"]
    prompt_delay = job.get("prompt_delay", 0.0)
    rng = random.Random(1)      # the same paces run after run
    stagger = prompt_delay or min(warmup / 2, 0.3)
    t0 = time.perf_counter()
    start, end = t0 + warmup, t0 + warmup + duration
    counted, ok, bad, errors = 0, 0, Counter(), Counter()
    overheads: list[float] = []
    latencies: list[float] = []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)

    async def caller_loop(i: int) -> None:
        nonlocal counted, ok
        await asyncio.sleep(stagger * i / conc)   # stagger the first connects
        while time.perf_counter() < end:
            began = time.perf_counter()
            caller, error = await one_session(host, port, scenario, prompt_delay=prompt_delay,
                                              rng=rng)
            ended = time.perf_counter()
            if not start <= ended <= end:
                if caller is None:
                    await asyncio.sleep(0.01)
                continue
            counted += 1
            if error:
                errors[error.split(":")[0]] += 1
                if caller is None:
                    await asyncio.sleep(0.01)
                    continue
            if expect is None or caller.commands == expect:
                ok += 1
            else:
                bad[" | ".join(caller.commands)[:300]] += 1
            overheads.extend(caller.overheads[1:])   # the first wait includes the DID lookup
            latencies.append(ended - began)

    await asyncio.gather(*(caller_loop(i) for i in range(conc)))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    wall = time.perf_counter() - t0
    return {"concurrency": conc, "duration": duration, "prompt_delay": prompt_delay,
            "sessions": counted,
            "sessions_per_s": counted / duration, "ok": ok, "wrong_path": sum(bad.values()),
            "wrong_examples": dict(bad.most_common(3)), "errors": dict(errors),
            "overhead": _summary(overheads),
            "session_ms": {k.replace("_ms", ""): v for k, v in
                           _summary(latencies).items() if k != "samples"},
            "loadgen_cpu_share": cpu / wall}


async def run_hold(job: dict) -> dict:
    scenario = Scenario(**job["scenario"])
    expect = job.get("expect")
    host, port, total = job["host"], job["port"], job["sessions"]
    ramp = job.get("ramp", 1.0)
    open_now = peak = 0
    results: list[tuple[Caller | None, str | None]] = []

    async def session(delay: float) -> None:
        nonlocal open_now, peak
        await asyncio.sleep(delay)
        open_now += 1
        peak = max(peak, open_now)
        try:
            results.append(await one_session(host, port, scenario, connect_timeout=60))
        finally:
            open_now -= 1

    t0 = time.perf_counter()
    await asyncio.gather(*(session(ramp * i / total) for i in range(total)))
    elapsed = time.perf_counter() - t0
    ok = sum(1 for c, e in results if c is not None and not e
             and (expect is None or c.commands == expect))
    errors = Counter((e or "").split(":")[0] for c, e in results if e)
    wrong = Counter(" | ".join(c.commands)[:300] for c, e in results
                    if c is not None and not e and expect is not None and c.commands != expect)
    return {"sessions": total, "ok": ok, "lost": total - ok, "errors": dict(errors),
            "wrong_examples": dict(wrong.most_common(3)), "peak_open_client_side": peak,
            "elapsed": elapsed}


def main() -> None:
    raise_nofile()
    job = json.loads(sys.stdin.read())
    # the load generator must not be the bottleneck: uvloop when it is installed
    use_loop(job.get("loop") or ("uvloop" if have_uvloop() else "asyncio"))
    runner = {"rate": run_rate, "hold": run_hold}[job["mode"]]
    result = asyncio.run(runner(job))
    print(json.dumps(result))


def scenario_dict(s: Scenario) -> dict:
    return asdict(s)


if __name__ == "__main__":
    main()
