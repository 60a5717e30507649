"""Stopping the engine's Redis stream readers without cancelling a blocking read.

Cancelling a task while redis.asyncio is inside a blocking XREADGROUP (BLOCK ms) can leave
the task stuck in "cancelling" for good (seen with redis-py 8.1: the connection clean-up
never completes), which hung the engine's stop. So readers check a stop flag between
reads (each read blocks for half a second at most) and end by themselves; cancellation is only the
fallback after `grace` seconds, and even that wait is bounded.
"""
from __future__ import annotations

import asyncio
import logging

import redis.exceptions

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task | None, stopping: asyncio.Event, *,
                    grace: float = 3.0) -> None:
    if task is None:
        return
    stopping.set()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if done:
        return
    log.warning("%s did not stop within %.0fs; cancelling it", task.get_name(), grace)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.error("%s is stuck; leaving it behind", task.get_name())


async def wait_or_stop(event: asyncio.Event, stopping: asyncio.Event,
                       poll: float = 0.25) -> bool:
    """Wait for `event`; False if `stopping` was set first."""
    while not event.is_set():
        if stopping.is_set():
            return False
        try:
            await asyncio.wait_for(event.wait(), poll)
        except TimeoutError:
            pass
    return not stopping.is_set()


async def ensure_group(client, stream: str, group: str) -> None:
    """Create a stream's consumer group (and the stream) unless it exists: at start, and
    again after Redis lost them (a restart without persistence answers NOGROUP)."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
