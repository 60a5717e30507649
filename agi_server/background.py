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
from collections.abc import Awaitable, Callable

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


async def keep_reading(what: str, read: Callable[[Callable[[], None]], Awaitable[None]],
                       stopping: asyncio.Event, logger: logging.Logger = log,
                       on_redis_error: Callable[[], None] | None = None) -> None:
    """Run a stream reader until `stopping`, starting it again after a failure with a
    backoff (0.2 s doubling to 5 s). `read(healthy)` returns once `stopping` is set and
    calls `healthy()` whenever Redis has answered, which resets the backoff. A Redis
    ResponseError is expected too: NOGROUP after Redis lost the stream (restart, flush),
    which the reader mends by making the group again (ensure_group) on its next start."""
    backoff = 0.2

    def healthy() -> None:
        nonlocal backoff
        backoff = 0.2

    while not stopping.is_set():
        try:
            await read(healthy)
            return
        except asyncio.CancelledError:
            raise
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ResponseError) as exc:
            logger.warning("%s: %s; retrying in %.1fs", what, exc, backoff)
            if on_redis_error is not None:      # the engine's metrics
                on_redis_error()
        except Exception:
            logger.exception("%s failed; retrying", what)
        await asyncio.sleep(backoff)
        backoff = min(5.0, backoff * 2)
