"""Concurrent IVR calls through the real Asterisk 22 (issue 6, part 3).

Our PBX (trunx/asterisk/conf/ + dialplan/) from the cached root, the engine in its own process
with the demo account (the seed tree, prompts spoken by espeak-ng and staged into the PBX's
sounds folder), and `calls` scripted callers originated over AMI on Local channels at
once, each pressing 1 during the welcome prompt and 2 during the next, as
tests/integration/test_ivr_asterisk.py does for one call. Every call must walk welcome ->
has_business -> unqualified and end in a hangup; the SQLite record is read back by the
uniqueid of the Local ;2 half. CPU time of the engine and of Asterisk is read from /proc.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time

from bench.common import Child, cpu_seconds
from devtools.stack import Asterisk, RedisServer, find_root, free_port
from devtools.stack.ami import AmiClient, originate_local
from trunx import config as trunx_config
from trunx import db

DID = "+19495551234"
STEPS = "w1-d1-w1.5-d2"
EXPECTED_NODES = ["welcome", "has_business", "unqualified"]


async def _calls(pbx: Asterisk, engine: Child, calls: int, spread: float,
                 timeout: float) -> dict:
    from trunx.models import Call

    ami = AmiClient(pbx.ami_port, pbx.watch_user, pbx.ami_secret)
    await ami.connect()
    try:
        engine.ask("peak", reset=True)
        cpu0, ast0 = engine.ask("stats")["cpu"], cpu_seconds(pbx.pid)
        t0 = time.perf_counter()

        async def one(i: int):
            await asyncio.sleep(spread * i / calls)
            return await originate_local(ami, DID, STEPS,
                                         caller_id=f"Bench <+1202555{i:04d}>")

        placed = await asyncio.gather(*(one(i) for i in range(calls)),
                                      return_exceptions=True)
        originated = [c for c in placed if not isinstance(c, BaseException)]
        rows: dict[str, object] = {}
        deadline = time.monotonic() + timeout
        while len(rows) < len(originated) and time.monotonic() < deadline:
            ids = [c.callee_id for c in originated if c.callee_id not in rows]
            for row in Call.select().where(Call.uniqueid.in_(ids),
                                               Call.ended_at.is_null(False)):
                rows[row.uniqueid] = row
            await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - t0
        cpu1, ast1 = engine.ask("stats")["cpu"], cpu_seconds(pbx.pid)
        peak = engine.ask("peak")["peak"]
    finally:
        await ami.close()
    walked = {uid: [p["node"] for p in row.path if p["event"] == "enter"]
              for uid, row in rows.items()}
    good = [uid for uid, nodes in walked.items()
            if nodes == EXPECTED_NODES and rows[uid].outcome == "hangup"]
    wrong: dict[str, int] = {}
    for uid, nodes in walked.items():
        if uid not in good:
            key = f"{' > '.join(nodes)} ({rows[uid].outcome})"
            wrong[key] = wrong.get(key, 0) + 1
    return {
        "calls": calls, "originated": len(originated),
        "originate_errors": [str(c) for c in placed if isinstance(c, BaseException)][:3],
        "records": len(rows), "expected_path": len(good), "wrong": wrong,
        "peak_concurrent": peak, "elapsed": elapsed,
        "engine_cpu_ms_per_call": (cpu1 - cpu0) / max(1, len(rows)) * 1000,
        "asterisk_cpu_ms_per_call": (ast1 - ast0) / max(1, len(rows)) * 1000,
        "mean_call_s": (sum(r.duration or 0 for r in rows.values()) / len(rows)
                        if rows else None),
    }


def run(calls: int = 120, spread: float = 1.0, timeout: float = 90.0, log=print) -> dict:
    root = find_root()
    with tempfile.TemporaryDirectory(prefix="trunx-bench-ast-") as tmp, \
            RedisServer(tmp) as rs, \
            Asterisk(root, "pbx", agi_port=free_port()) as pbx:
        data = os.path.join(tmp, "data")
        settings = {"sounds_dir": str(pbx.sounds_dir_host),
                    "asterisk_sounds_dir": pbx.sounds_dir_in_root, "gather_timeout": "2.0",
                    "ami_port": pbx.ami_port, "ami_user": pbx.ami_user,
                    "ami_secret": pbx.ami_secret}
        args = ["--data-dir", data, "--redis-url", rs.url, "--port", str(pbx.agi_port),
                "--seed", "demo"]
        for name, value in settings.items():
            args += ["--set", f"{name}={value}"]
        with Child("bench.engine_proc", *args,
                   stderr_path=os.path.join(tmp, "engine.log")) as engine:
            db.connect(trunx_config.load(env={}, data_dir=data, redis_url=rs.url))
            # one call first: the engine's cache is warm and the prompts are known good
            warm = asyncio.run(_calls(pbx, engine, 1, 0.0, 30.0))
            if warm["expected_path"] != 1:
                raise RuntimeError(f"a single call on the real Asterisk went wrong: {warm}")
            result = asyncio.run(_calls(pbx, engine, calls, spread, timeout))
            result["boot_seconds"] = pbx.boot_seconds
            result["engine_errors"] = engine.ask("stats")["server"].get("errors", 0)
        log(f"  asterisk {result['expected_path']}/{result['calls']} calls on the expected "
            f"path, peak {result['peak_concurrent']} concurrent, engine "
            f"{result['engine_cpu_ms_per_call']:.2f} ms CPU/call")
    return result
