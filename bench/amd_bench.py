"""Answering-machine detection under load: hundreds of answered calls streaming their audio
to the engine at once (issue 11: "for hundreds of calls at once without blocking the loop").

A client process plays `calls` AudioSocket peers the way Asterisk does (the uuid, then a
20 ms frame of 8 kHz audio every 20 ms each, one ticker for all) for `seconds`: bursts of
speech-like noise, pauses, and a beep, so the detector's voice activity and its Goertzel
bank both work. This process serves them with the engine's AudioSocketServer:

    trunx      every frame fed to a Detector (agi_server.amd.detector), as a live call does
    baseline   the same server and framing, frames dropped: the cost of receiving the audio

Figures: this process's CPU per 20 ms frame (both), the share of a core 'calls' calls
take, and the event loop's lag (a 10 ms timer's overshoot, p99) while they stream.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # as the engine runs (agi_server/__main__)

import numpy as np  # noqa: E402

from agi_server.amd.audiosocket import AudioSocketServer  # noqa: E402
from agi_server.amd.detector import Detector  # noqa: E402

RATE, FRAME = 8000, 160


def _signal(seed: int) -> bytes:
    """About 6 s of answer-like audio: speech-like bursts, pauses, a beep."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(3):
        n = int(RATE * rng.uniform(0.6, 1.4))
        envelope = np.abs(np.sin(np.linspace(0, rng.uniform(6, 12) * np.pi, n)))
        parts.append(rng.normal(0, 3000, n) * envelope)
        parts.append(rng.normal(0, 30, int(RATE * rng.uniform(0.2, 0.6))))
    t = np.arange(int(RATE * 0.3)) / RATE
    parts.append(8000 * np.sin(2 * np.pi * rng.uniform(500, 2000) * t))
    parts.append(rng.normal(0, 30, int(RATE * 0.8)))
    pcm = np.concatenate(parts)
    pcm = pcm[:len(pcm) - len(pcm) % FRAME]
    return np.clip(pcm, -32768, 32767).astype("<i2").tobytes()


async def _clients(port: int, uuids: list[str], seconds: float) -> None:
    import uuid as uuidlib
    conns = []
    for u in uuids:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(bytes((0x01, 0, 16)) + uuidlib.UUID(u).bytes)
        conns.append(writer)
    signals = [_signal(i) for i in range(8)]
    header = bytes((0x10, FRAME * 2 >> 8, FRAME * 2 & 0xFF))
    loop = asyncio.get_running_loop()
    due, end, i = loop.time(), loop.time() + seconds, 0
    while loop.time() < end:
        for k, w in enumerate(conns):
            sig = signals[k % len(signals)]
            start = (i * FRAME * 2 + k * 640) % len(sig)
            w.write(header + sig[start:start + FRAME * 2].ljust(FRAME * 2, b"\0"))
        i += 1
        due += 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))
    for w in conns:
        w.close()


def client_main(argv) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    args = p.parse_args(argv)
    uuids = json.loads(sys.stdin.read())
    asyncio.run(_clients(args.port, uuids, args.seconds))
    return 0


async def _serve(calls: int, seconds: float, detect: bool) -> dict:
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    streams = [server.expect() for _ in range(calls)]
    frames = [0]
    for s in streams:
        if detect:
            d = Detector("DetectMessageEnd", timeout_ms=10 ** 9, silence_timeout_ms=10 ** 9)
            s.on_audio = lambda pcm, d=d: d.feed(pcm)
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe():
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t0 - 0.01)

    probing = asyncio.create_task(probe())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.amd_bench", "client", "--port", str(server.port),
        "--seconds", str(seconds), stdin=subprocess.PIPE, env=dict(os.environ))
    proc.stdin.write(json.dumps([s.uuid for s in streams]).encode())
    proc.stdin.close()
    await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), 30)
    lags.clear()                    # the streaming only, not the set-up
    cpu0, t0 = time.process_time(), time.perf_counter()
    await proc.wait()
    await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in streams)), 30)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    stop.set()
    streamed = list(lags)
    await probing
    await server.stop()
    frames[0] = sum(s.frames for s in streams)
    lags = sorted(streamed)
    return {"frames": frames[0], "cpu_s": cpu, "wall_s": wall,
            "cpu_per_frame_us": cpu / max(1, frames[0]) * 1e6,
            "core_share": cpu / wall, "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
            "lag_max_ms": lags[-1] * 1000}


def run(calls: int = 300, seconds: float = 10.0, log=print) -> dict:
    """On the engine's own event loop (uvloop) and its server."""
    import uvloop

    out = {"calls": calls, "seconds": seconds}
    for name, detect in (("baseline", False), ("trunx", True)):
        out[name] = uvloop.run(_serve(calls, seconds, detect))
    t, b = out["trunx"], out["baseline"]
    log(f"  amd {calls} calls: {t['cpu_per_frame_us']:.1f} us CPU per frame (receiving only "
        f"{b['cpu_per_frame_us']:.1f}), {t['core_share']:.0%} of a core, loop lag p99 "
        f"{t['lag_p99_ms']:.1f} ms")
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        sys.exit(client_main(sys.argv[2:]))
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=1))
