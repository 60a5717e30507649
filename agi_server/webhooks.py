"""Call-status webhooks, delivered in the background so they never delay call control.

The tracker stores each status change as a CallEvent (with the JSON body as a snapshot)
and calls `submit`, which only appends to a per-call queue. One worker task per call
delivers that call's events in order (a slow or failing receiver holds back only that
call's later events), each POST signed (trunx.webhook_sign) and retried on failure with
exponential backoff, `base_delay * 2**n` capped at `max_delay`, at most `max_attempts`
times. The HTTP requests run on their own small thread pool, never the event loop or the
database thread. Any 2xx is a delivery; anything else (or no answer in `timeout`) is a
failure. Delivery is at least once: a receiver that answered too late may see an event
again, with the same `id` and X-Trunx-Event-Id. Undelivered events are picked up again
when the engine starts.

Each POST (agi_server/webhook_http.py) re-checks the URL against the address policy of
every user URL (no loopback or private addresses unless `webhook_allow_private`), has one
deadline for the whole request (`webhook_timeout`) and reads a capped answer. Deliveries
are per account: each POST runs on a thread of its own, and an account has at most
`per_account` POSTs in flight, so a receiver that is slow or trickles bytes holds back
only its own account's webhooks, never another's. URLs are logged with any credentials
masked.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable

from agi_server.webhook_http import Post, PostFailed
from trunx import webhook_sign
from trunx.models import Call, CallEvent, utcnow
from trunx.url_policy import mask

log = logging.getLogger(__name__)


class WebhookSender:
    def __init__(self, config, db: Callable, *, max_attempts: int = 6,
                 base_delay: float = 1.0, max_delay: float = 60.0,
                 timeout: float | None = None, per_account: int = 2):
        self.config = config
        self._db = db
        self.max_attempts = max_attempts
        self.timeout = config.webhook_timeout if timeout is None else timeout
        self.base_delay, self.max_delay = base_delay, max_delay
        self.per_account = per_account
        self.stats: Counter = Counter()
        self._lanes: dict[str, asyncio.Semaphore] = {}   # account -> POSTs in flight
        self._queues: dict[str, deque] = {}
        self._workers: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        try:
            pending = await self._db(_undelivered, self.max_attempts, self.config.webhook_secret)
        except Exception:
            log.exception("undelivered webhooks not reloaded")
            return
        for job in pending:
            self.submit(job)
        if pending:
            log.info("re-queued %d undelivered webhook(s)", len(pending))

    async def stop(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every submitted event was delivered or given up on (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            while self._workers:
                await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    def submit(self, job: dict) -> None:
        """job: {event, call, url, body, secret, account?, attempts?}; returns at once.
        (A job with no account is a lane of its own.)"""
        self._queues.setdefault(job["call"], deque()).append(job)
        if job["call"] not in self._workers:
            task = asyncio.create_task(self._worker(job["call"]), name=f"webhooks-{job['call']}")
            self._workers[job["call"]] = task

    async def _worker(self, call_id: str) -> None:
        queue = self._queues[call_id]
        try:
            while queue:
                await self._deliver(queue.popleft())
        finally:
            self._workers.pop(call_id, None)
            if not queue:
                self._queues.pop(call_id, None)

    async def _deliver(self, job: dict) -> None:
        attempts = job.get("attempts", 0)
        loop = asyncio.get_running_loop()
        while attempts < self.max_attempts:
            attempts += 1
            headers = webhook_sign.headers(job["secret"], job["body"], job["event"])
            lane = self._lane(job.get("account") or job["call"])
            async with lane:
                try:
                    status = await self._post(loop, job["url"], job["body"], headers)
                    error = None if 200 <= status < 300 else f"HTTP {status}"
                except PostFailed as exc:
                    error = str(exc)
            if error is None:
                self.stats["delivered"] += 1
                await self._db(_mark, job["event"], attempts, None, True)
                return
            self.stats["failed_attempts"] += 1
            log.info("webhook %s to %s failed (attempt %d): %s", job["event"],
                     mask(job["url"]), attempts, error)
            await self._db(_mark, job["event"], attempts, error, False)
            if attempts < self.max_attempts:
                await asyncio.sleep(min(self.max_delay, self.base_delay * 2 ** (attempts - 1)))
        self.stats["given_up"] += 1
        log.warning("webhook %s to %s given up after %d attempts", job["event"],
                    mask(job["url"]), attempts)

    def _lane(self, account: str) -> asyncio.Semaphore:
        lane = self._lanes.get(account)
        if lane is None:
            lane = self._lanes[account] = asyncio.Semaphore(self.per_account)
        return lane

    async def _post(self, loop, url: str, body: str, headers: dict) -> int:
        """The POST on a thread of its own, abandoned (its socket shut) at the deadline."""
        post = Post(url, body.encode("utf-8"), headers, timeout=self.timeout,
                    allow_private=self.config.webhook_allow_private)
        done = loop.create_future()

        def run():
            try:
                result = post.run()
            except BaseException as exc:    # handed to the event loop, raised there
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)

        threading.Thread(target=run, name="trunx-webhook", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), self.timeout)
        except TimeoutError:
            post.abort()
            done.cancel()     # the thread's late result is dropped, not left unretrieved
            raise PostFailed(f"no answer within {self.timeout:g} s") from None


def _settle(future: asyncio.Future, result, exc) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


# -- database-thread functions -----------------------------------------------------------
def _mark(event_id: str, attempts: int, error: str | None, delivered: bool) -> None:
    changes = {"attempts": attempts, "last_error": error}
    if delivered:
        changes["delivered_at"] = utcnow()
    CallEvent.update(**changes).where(CallEvent.id == event_id).execute()


def _undelivered(max_attempts: int, global_secret: str) -> list[dict]:
    from trunx.calls import webhook_secrets

    rows = (CallEvent.select(CallEvent, Call).join(Call)
            .where(CallEvent.webhook_url.is_null(False), CallEvent.delivered_at.is_null(),
                   CallEvent.attempts < max_attempts, CallEvent.payload.is_null(False))
            .order_by(CallEvent.at))
    jobs = []
    for event in rows:
        account_id = event.call.account_id
        jobs.append({"event": event.id, "call": event.call_id, "account": account_id,
                     "url": event.webhook_url,
                     "body": event.payload, "attempts": event.attempts,
                     "secret": global_secret or webhook_secrets(account_id)})
    return jobs
