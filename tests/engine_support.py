"""Shared set-up for engine tests: an account, the seed tree, a running Engine."""
from __future__ import annotations

import contextlib

from agi_server.engine import Engine
from devtools.demo import DEMO_DID, SEED_TREE  # noqa: F401  (re-exported for tests)
from tests import db_support
from tests.store_support import store_on
from trunx import config as trunx_config
from trunx import db, redis_client
from trunx.ivr import store as ivr_store
from trunx.models import Account, Did

SEED_DID = DEMO_DID


def make_config(tmp_path, redis_url, **overrides):
    # free ports: tests run beside each other (and beside `make run`)
    values = {"data_dir": str(tmp_path / "data"), "redis_url": redis_url, "agi_port": 0,
              "engine_http_port": 0, "audiosocket_port": 0,
              "database_url": db_support.database_url()}
    return trunx_config.load(env={}, **{**values, **overrides})


def seed_account(cfg, r, tree=SEED_TREE, did=SEED_DID, ivr_id="qualify-business",
                 account=None):
    db.connect(cfg)
    account = account or Account.create(name="test")
    ivr, _, _ = ivr_store.save(store_on(r), account.id, ivr_id, tree, cfg, create=True)
    ivr_store.assign(store_on(r), ivr, Did.create(number=did, account=account))
    return account, ivr


@contextlib.asynccontextmanager
async def running_engine(cfg, redis_up=True):
    """A started Engine; with redis_up=False its Redis is unreachable from the start, so
    there is nothing to resync from and the cache never listens."""
    aio = redis_client.async_client(cfg.redis_url)     # plain or Sentinel
    sync = redis_client.sync_client(cfg.redis_url)
    engine = Engine(cfg, aio, sync)
    await engine.start(resync=redis_up)
    if redis_up:
        await engine.cache.wait_listening()
    try:
        yield engine
    finally:
        await engine.stop()
        await aio.aclose()
        sync.close()
