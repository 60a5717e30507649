"""The engine's small HTTP listener beside FastAGI: `/healthz`, `/readyz`, `/metrics`.

    GET /healthz   200 {"status": "ok"}: the event loop answers
    GET /readyz    200 when FastAGI listens and AMI, Redis and the database all answer;
                   else 503, each check saying what failed
    GET /metrics   Prometheus text (agi_server/metrics.py)

On `engine_http_host`:`engine_http_port` (127.0.0.1:4574; 0 picks a free port, -1 turns it
off). It speaks just enough HTTP/1.1 for a probe or a Prometheus scrape: one GET per
connection, a request head of at most 8 KiB read within 5 s, `Connection: close`.
It is an asyncio server on the engine's loop, so a readiness answer is the loop's own.
"""
from __future__ import annotations

import asyncio
import json
import logging

log = logging.getLogger(__name__)

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
CHECK_TIMEOUT = 2.0
PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(self, engine, host: str, port: int):
        self.engine = engine
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = await self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except Exception:
            log.exception("health listener: request failed")
            status, ctype, body = 500, "text/plain", b"internal error\n"
        try:
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % (status, _REASONS.get(status, b"?"),
                                                         ctype.encode(), len(body)) + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
        target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"GET only\n"
        if target == b"/healthz":
            return 200, "application/json", b'{"status":"ok"}\n'
        if target == b"/readyz":
            checks = await self.readiness()
            ready = all(v == "ok" for v in checks.values())
            body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
            return (200 if ready else 503), "application/json", body
        if target == b"/metrics":
            return 200, PROM_TYPE, await self.engine.metrics.exposition()
        return 404, "text/plain", b"not found\n"

    async def readiness(self) -> dict[str, str]:
        e = self.engine
        checks = {"agi": "ok" if e.server.listening else "failing: not listening",
                  "ami": "ok" if e.ami.connected.is_set() else "failing: not logged in"}
        checks["redis"] = await _check(e.redis.ping())
        checks["database"] = await _check(e.db_ping())
        return checks


async def _check(probe) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe
        return "ok"
    except Exception as exc:     # whatever it is, the answer is "not ready" and why
        return f"failing: {type(exc).__name__}: {exc}"[:200]


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            500: b"Internal Server Error",
            503: b"Service Unavailable"}
