"""agi_server/health.py on a socket, before anything else of an engine runs: the routes,
and what it answers to requests that are not what it serves."""
from __future__ import annotations

import asyncio
import types
from collections import Counter

from agi_server.health import HealthServer
from agi_server.metrics import EngineMetrics


class _Redis:
    async def ping(self):
        raise ConnectionError("redis down")

    async def zcard(self, key):
        return 3


def _engine():
    """The parts the listener reads, as plain objects (no engine code replaced)."""
    engine = types.SimpleNamespace(
        server=types.SimpleNamespace(listening=True, stats=Counter(calls=2)),
        ami=types.SimpleNamespace(connected=asyncio.Event(), stats=Counter()),
        redis=_Redis(), registry=types.SimpleNamespace(
            calls={}, index=types.SimpleNamespace(failed=2)),
        services=types.SimpleNamespace(stats=Counter()),
        webhooks=types.SimpleNamespace(stats=Counter(delivered=4)), metrics=EngineMetrics())

    async def db_ping():
        return None
    engine.db_ping = db_ping
    engine.metrics.watch(engine)
    return engine


async def ask(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    writer.write_eof()           # the request is all there is
    await writer.drain()
    reply = await reader.read()
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_routes_and_refusals():
    engine = _engine()
    server = HealthServer(engine, "127.0.0.1", 0)
    await server.start()
    try:
        port = server.port
        assert await ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == (
            200, b'{"status":"ok"}\n')
        status, body = await ask(port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert status == 503
        assert b'"ami": "failing: not logged in"' in body and b'"database": "ok"' in body
        assert b"redis down" in body
        status, body = await ask(port, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")
        assert status == 200
        assert b"trunx_originate_queue_depth 3.0" in body
        assert b'trunx_redis_errors_total{where="live-index"} 2.0' in body
        assert b'trunx_webhook_deliveries_total{result="delivered"} 4.0' in body
        assert b'trunx_agi_sessions_total{result="calls"} 2.0' in body
        assert (await ask(port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await ask(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await ask(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"))[0] == 400
        # a peer that stops mid-head gets a 400, and the listener keeps serving
        assert await ask(port, b"GET /hea") == (400, b"bad request\n")
        assert (await ask(port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == 200
    finally:
        await server.stop()
