"""The engine's Redis error counts (agi_server/metrics.py) when its Redis restarts under
it: the stream readers' failed reads are counted, and the engine goes on."""
from __future__ import annotations

import asyncio

from devtools.stack import RedisServer
from tests.api.test_observe_api import sample
from tests.engine_support import make_config, running_engine


async def test_a_redis_restart_counts_the_stream_readers_errors(tmp_path):
    with RedisServer(tmp_path / "own-redis") as own:
        cfg = make_config(tmp_path, own.url)
        async with running_engine(cfg) as engine:
            text = (await engine.metrics.exposition()).decode()
            assert sample(text, "trunx_redis_errors_total", where="command-stream") == 0
            # down long enough that the engine's one resend of a dropped command fails too
            # (a restart between two reads is absorbed by it: trunx/redis_client.py)
            own.kill()
            async with asyncio.timeout(15):
                while True:
                    text = (await engine.metrics.exposition()).decode()
                    if (sample(text, "trunx_redis_errors_total", where="command-stream") >= 1
                            and sample(text, "trunx_redis_errors_total",
                                       where="originate-stream") >= 1):
                        break
                    await asyncio.sleep(0.05)
            own.start()
            async with asyncio.timeout(15):      # and it reads again once Redis is back
                while not engine.cache.listening:
                    await asyncio.sleep(0.05)
