"""The engine's half of the outbox (trunx/outbox.py): every `outbox_grace` seconds, the
API writes whose Redis step is still owed that long after their commit are completed here,
on the database thread (a query on an indexed column when there are none). Their API
worker died between the database and Redis; applying an entry twice is a no-op. Once an
hour, entries done more than a week ago are deleted."""
from __future__ import annotations

import asyncio
import logging
import time

from trunx import outbox
from trunx.ivr import store as ivr_store

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0    # seconds between deletions of entries done a week ago


class OutboxSweeper:
    def __init__(self, config, db, store):
        self.grace = float(config.outbox_grace)
        self._db = db                  # runs a blocking function on the database thread
        self.store = store             # the Store: its Redis client and writer lock
        self.completed = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.grace > 0:
            self._task = asyncio.create_task(self._run(), name="outbox-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        ran = await self._db(outbox.sweep, self.store, self.grace, ivr_store.republish)
        self.completed += ran
        return ran

    async def _run(self) -> None:
        pruned_at = 0.0
        while True:
            await asyncio.sleep(self.grace)
            try:
                await self.sweep()
                now = time.monotonic()
                if now - pruned_at >= PRUNE_EVERY:
                    pruned_at = now
                    await self._db(outbox.prune)
            except asyncio.CancelledError:
                raise
            except Exception:      # Redis or the database away: the next round tries again
                log.warning("outbox sweep failed", exc_info=True)
