"""Recordings are kept `recording_retention_days` and then purged, files and rows; the
engine's upkeep task runs the purge as it starts and every `recording_purge_interval`."""
from __future__ import annotations

import asyncio
import datetime as dt
import os

from trunx import config, db, recordings
from trunx.models import Account, Recording, utcnow


def _recording(cfg, account, age_days: float, status: str = "stopped") -> Recording:
    rec = Recording.create(account=account, call_id="c1", status=status, format="mp3",
                           created_at=utcnow() - dt.timedelta(days=age_days))
    path = recordings.final_file(cfg, account.id, rec.id, "mp3")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"ID3")
    rec.file_path = path
    rec.save()
    return rec


def test_recordings_older_than_the_retention_go_with_their_files(tmp_path):
    cfg = config.load(env={}, data_dir=str(tmp_path))
    db.connect(cfg)
    account = Account.create(name="a")
    old = _recording(cfg, account, 31)
    failed = _recording(cfg, account, 45, status="failed")
    young = _recording(cfg, account, 29)
    assert recordings.purge_expired(cfg) == 2
    assert [r.id for r in Recording.select()] == [young.id]
    assert not os.path.exists(old.file_path) and not os.path.exists(failed.file_path)
    assert os.path.exists(young.file_path)
    # a shorter retention, and a file already gone, are fine
    os.unlink(young.file_path)
    assert recordings.purge_expired(cfg.replace(recording_retention_days=7),
                                    now=utcnow() + dt.timedelta(days=8)) == 1
    assert Recording.select().count() == 0


def test_the_engine_upkeep_purges_at_start(tmp_path, redis_server):
    from concurrent.futures import ThreadPoolExecutor

    import redis.asyncio as aioredis

    from agi_server.calls.registry import Registry

    cfg = config.load(env={}, data_dir=str(tmp_path), redis_url=redis_server.url)
    db.connect(cfg)
    account = Account.create(name="a")
    old = _recording(cfg, account, 31)

    async def run():
        pool = ThreadPoolExecutor(1)
        aio = aioredis.Redis.from_url(cfg.redis_url, decode_responses=True)

        async def on_db(fn, *args):
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

        live = Registry(cfg, on_db, aio, None, None)
        await live.start()
        try:
            async with asyncio.timeout(5):
                while live.purged == 0:
                    await asyncio.sleep(0.02)
        finally:
            await live.stop()
            await aio.aclose()
            pool.shutdown()

    asyncio.run(run())
    assert Recording.get_or_none(Recording.id == old.id) is None
