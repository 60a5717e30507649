"""The baseline: a minimal FastAGI app on panoramisk 1.4, in a process of its own.

    python -m bench.baseline_agi [--port P] [--loop asyncio|uvloop] [--kind panoramisk|floor]

It sends the same command sequence trunx's engine sends for the benchmark's walk through
the seed tree, hard-coded: no tree, no cache, no call record, no escaping, no checks of
the replies. That is the best a hand-written script on panoramisk can do, so it bounds
what a FastAGI server in Python on asyncio costs per call.

Python 3.11: panoramisk's `Application.add_route` wraps a plain function with
`asyncio.coroutine`, which 3.11 removed; a route written as `async def` never reaches that
line, so no shim is needed. The app is made inside the running loop and given it, since
`asyncio.get_event_loop()` outside one is deprecated. The server uses asyncio's default
listen backlog, as trunx's engine does.

`--kind floor` is not a baseline but the floor under both: an asyncio Protocol that writes
the same hard-coded commands, one per reply line, and parses nothing (it only looks for the
LFs). What it costs per call is the event loop and the socket system calls alone, which
no FastAGI server in Python on that loop can go below.

Same JSON-line control as bench.engine_proc: prints {"port"} when listening, answers
{"op": "stats"} and {"op": "peak"}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from panoramisk.fast_agi import Application

from bench.common import cpu_seconds, raise_nofile, rss_bytes, use_loop

# What trunx's engine sends for answer, ask (prompt + wait), route, ask, play, hangup on the
# seed tree (checked against the engine's own sequence by bench.agi_bench).
COMMANDS = (
    "ANSWER",
    'GET OPTION "welcome" "0123456789*#" 5000',
    'GET OPTION "business_check" "0123456789*#" 5000',
    'STREAM FILE "not_qualified" ""',
    "HANGUP",
)

active = {"now": 0, "peak": 0, "rss_at_peak": 0, "max_rss": 0, "calls": 0}


async def ivr(request) -> None:
    for command in COMMANDS:
        await request.send_command(command)


class Floor(asyncio.Protocol):
    """The commands, one per reply line, and nothing else (see the module's doc)."""

    LINES = [c.encode() + b"\n" for c in COMMANDS]

    def connection_made(self, transport) -> None:
        self.transport, self.buf, self.sent = transport, b"", 0
        active["now"] += 1
        active["calls"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.sent == 0:
            head, blank, self.buf = self.buf.partition(b"\n\n")
            if not blank:
                self.buf = head
                return
            self._next()
        while (cut := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[:cut], self.buf[cut + 1:]
            if line != b"HANGUP":
                self._next()

    def _next(self) -> None:
        if self.sent == len(self.LINES):
            self.transport.close()
            return
        self.transport.write(self.LINES[self.sent])
        self.sent += 1

    def connection_lost(self, exc) -> None:
        active["now"] -= 1


async def serve(port: int, kind: str) -> None:
    loop = asyncio.get_running_loop()
    if kind == "floor":
        server = await loop.create_server(Floor, "127.0.0.1", port)
    else:
        app = Application(loop=loop)
        app.add_route("ivr", ivr)

        async def handler(reader, writer):
            active["now"] += 1
            active["calls"] += 1
            try:
                await app.handler(reader, writer)
            finally:
                active["now"] -= 1

        server = await asyncio.start_server(handler, "127.0.0.1", port)
    pid = os.getpid()

    async def sample():      # as bench.engine_proc.Sampler: RSS read only at a new peak
        while True:
            if active["now"] > active["peak"]:
                rss = rss_bytes(pid)
                active["max_rss"] = max(active["max_rss"], rss)
                active["peak"], active["rss_at_peak"] = active["now"], rss
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print(json.dumps({"port": server.sockets[0].getsockname()[1], "pid": pid}), flush=True)
    while line := await stdin.readline():
        op = json.loads(line)
        if op["op"] == "stats":
            out = {"sessions": active["now"], "calls": active["calls"], "rss": rss_bytes(pid),
                   "cpu": cpu_seconds(pid)}
        elif op["op"] == "peak":
            out = {k: active[k] for k in ("peak", "rss_at_peak", "max_rss")}
            if op.get("reset"):
                active.update(peak=0, rss_at_peak=0, max_rss=0)
        else:
            out = {"error": f"unknown op {op['op']!r}"}
        print(json.dumps(out), flush=True)
    sampler.cancel()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_agi")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--kind", default="panoramisk", choices=("panoramisk", "floor"))
    args = parser.parse_args()
    raise_nofile()
    use_loop(args.loop)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args.port, args.kind))


if __name__ == "__main__":
    main()
