"""What an account's webhook hears about inbound calls and recordings, signed and delivered
by agi_server.webhooks.WebhookSender like the outbound status webhooks:

    call.started     an inbound call reached its IVR: {id, type, at, call: {id, direction,
                     from, to, ivr, ivrVersion, status: "answered", createdAt}}
    call.completed   it ended: the call as GET /api/voice/{id} shows it (outcome, duration,
                     endReason and the IVR path, trunx/call_path.py)
    recording.ready  a live-call recording's file is finished: {recording: {recording_uuid,
                     callId, status, format, duration, url}}

The URL is the account's webhook URL (PATCH /api/account), or for a recording of an
outbound call the call's own `webhookUrl` first. Nothing here is on the call's path: the
account is read on the database thread in a task of its own once the call has its IVR,
and `call.completed` goes once the call's row is written (the engine's group commit), so
each event is a CallEvent (kept for redelivery after a restart) referring to the row. A
call's events go in order: `completed` waits for `started` to have been handed to the
sender. An account's URL and secret are remembered for `TARGET_TTL` seconds, so the calls
of an account without a webhook cost the database thread nothing.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from trunx import call_path, calls, recordings
from trunx.models import Account, Call, CallEvent, Recording, iso, new_id, utcnow

log = logging.getLogger(__name__)

TARGET_TTL = 10.0     # seconds an account's webhook URL is remembered (a PATCH shows after)


class CallNotifier:
    def __init__(self, config, db, sender):
        self.config = config
        self._db = db
        self.sender = sender
        self._started: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._targets: dict[str, tuple[float, tuple[str, str] | None]] = {}

    def wants(self, account: str | None) -> bool:
        """False when the account surely has no webhook (known, within TARGET_TTL): its
        calls then cost no task at all."""
        if account is None:
            return False
        cached = self._targets.get(account)
        return cached is None or cached[1] is not None or cached[0] <= time.monotonic()

    async def _target_for(self, account: str) -> tuple[str, str] | None:
        """(url, secret) of the account's webhook, or None; read at most every TARGET_TTL."""
        now = time.monotonic()
        cached = self._targets.get(account)
        if cached is not None and cached[0] > now:
            return cached[1]
        target = await self._db(_target, account, None, self.config.webhook_secret)
        self._targets[account] = (now + TARGET_TTL, target)
        return target

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a call webhook was not sent", exc_info=task.exception())

    async def drain(self, timeout: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # -- inbound calls -------------------------------------------------------------------
    def started(self, record) -> None:
        """The call has its account and IVR (engine.ivr_call): send call.started."""
        if self.wants(record.account):
            self._started[record.id] = self._spawn(self._send_started(record))

    async def _send_started(self, record) -> None:
        body = {"id": new_id("evt"), "type": "call.started", "at": iso(utcnow()),
                "call": {"id": record.id, "direction": "inbound", "from": record.caller,
                         "to": record.did, "ivr": record.ivr_id,
                         "ivrVersion": record.ivr_version, "status": "answered",
                         "createdAt": iso(record.started_at)}}
        target = await self._target_for(record.account)
        if target is None:
            return
        # kept as a CallEvent like the others, so an engine that stops before delivering
        # it sends it on its next start (the call's row is written before ANSWER)
        payload = await self._db(_started_event, record.id, target[0], body)
        self.sender.submit({"event": body["id"], "call": record.id, "url": target[0],
                            "secret": target[1], "body": payload})

    def forget(self, call_id: str) -> None:
        """The call ended and needs no call.completed."""
        self._started.pop(call_id, None)

    def completed(self, record, saved: asyncio.Future) -> None:
        """The call ended; `saved` resolves (True) once its row is written."""
        first = self._started.pop(record.id, None)
        self._spawn(self._send_completed(record, saved, first))

    async def _send_completed(self, record, saved: asyncio.Future, first) -> None:
        if first is not None:
            await asyncio.wait([first])
        if not await saved:
            return          # no row: the failure is logged where the write failed
        if await self._target_for(record.account) is None:
            return
        job = await self._db(_completed_event, record.id, self.config.webhook_secret,
                             self.config.public_base_url)
        if job is not None:
            self.sender.submit(job)

    # -- recordings ------------------------------------------------------------------------
    async def recording_ready(self, rec_id: str) -> None:
        job = await self._db(_recording_event, rec_id, self.config.webhook_secret,
                             self.config.public_base_url)
        if job is not None:
            self.sender.submit(job)


# -- database-thread functions -------------------------------------------------------------
def _target(account_id: str, call_url: str | None, global_secret: str):
    """(url, secret) for a webhook to this account, or None when it has no URL."""
    account = Account.get_or_none(Account.id == account_id)
    url = call_url or (account.webhook_url if account is not None else None)
    if not url:
        return None
    return url, global_secret or calls.ensure_webhook_secret(account_id)


def _event(call_id: str, kind: str, status: str, url: str, body: dict) -> CallEvent:
    """A CallEvent row with its payload: redelivered after a restart until delivered."""
    event = CallEvent(id=body["id"], call=call_id, type=kind, status=status, at=utcnow(),
                      webhook_url=url)
    body["at"] = iso(event.at)
    event.payload = json.dumps(body, separators=(",", ":"))
    event.save(force_insert=True)
    return event


def _started_event(call_id: str, url: str, body: dict) -> str:
    """The call.started body, stored for redelivery when the call has its row (not yet
    only when the database was slower than the engine's wait before ANSWER)."""
    if Call.select().where(Call.id == call_id).exists():
        return _event(call_id, "call.started", "answered", url, body).payload
    return json.dumps(body, separators=(",", ":"))


def _completed_event(call_id: str, global_secret: str, base_url: str) -> dict | None:
    row = Call.get_or_none(Call.id == call_id)
    if row is None or row.account_id is None:
        return None
    target = _target(row.account_id, None, global_secret)
    if target is None:
        return None
    durations = call_path.asset_durations(row.account_id, [row.path])
    call = calls.call_json(row, base_url=base_url)
    call.update(ivr=row.ivr_id, ivrVersion=row.ivr_version, outcome=row.outcome,
                path=call_path.path_json(row.path, durations))
    body = {"id": new_id("evt"), "type": "call.completed", "at": None, "call": call}
    event = _event(call_id, "call.completed", row.status, target[0], body)
    return {"event": event.id, "call": call_id, "url": target[0], "secret": target[1],
            "body": event.payload}


def _recording_event(rec_id: str, global_secret: str, base_url: str) -> dict | None:
    rec = Recording.get_or_none(Recording.id == rec_id)
    if rec is None:
        return None
    row = Call.get_or_none(Call.id == rec.call_id)
    target = _target(rec.account_id, row.webhook_url if row is not None else None,
                     global_secret)
    if target is None:
        return None
    body = {"id": new_id("evt"), "type": "recording.ready", "at": iso(utcnow()),
            "recording": {"recording_uuid": rec.id, "callId": rec.call_id,
                          "status": rec.status, "format": rec.format,
                          "duration": None if rec.duration is None else round(rec.duration, 3),
                          "url": recordings.url(base_url or "", rec)}}
    if row is not None:       # kept for redelivery (an inbound call may have no row yet)
        event = _event(row.id, "recording.ready", rec.status, target[0], body)
        payload = event.payload
    else:
        payload = json.dumps(body, separators=(",", ":"))
    return {"event": body["id"], "call": rec.call_id, "url": target[0], "secret": target[1],
            "body": payload}
