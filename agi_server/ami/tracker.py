"""Outbound call status from AMI events: initiated -> ringing -> answered -> completed|failed.

The dialer registers a call (`track`) before it sends the Originate, whose ChannelId is
the call id, so every event of the call's channel carries `Uniqueid: <call id>`:

    Newchannel                  the channel's name (for Hangup)
    Newstate 5 Ringing          -> ringing (the carrier sent 180/183)
    Newstate 6 Up               -> answered, at the event's Timestamp
    HangupRequest / Hangup      cause (Q.850); Hangup ends the call:
                                answered -> completed, duration = hangup - answer (Asterisk's
                                timestamps); else failed with end_reason from the cause
    OriginateResponse Failure   ends a call whose channel never existed

Events are handled in order on one task; a status only moves forward, and each change is
written to SQLite (on the engine's database thread) with a CallEvent, then handed to the
webhook sender, which delivers in the background. AMI reconnects are reconciled from
`CoreShowChannels`: events missed while disconnected are recovered from the channels that
still exist, and a call whose channel is gone is ended.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from agi_server.ami.client import AmiError, AmiUnavailable
from agi_server.calls.live_call import OUTBOUND, LiveCall
from trunx import calls, outbox, redis_schema
from trunx.calls import ts_from_utc, utc_from_ts
from trunx.models import Account, Call, CallEvent, utcnow

log = logging.getLogger(__name__)

RANK = {status: i for i, status in enumerate(calls.STATUSES)}
# Q.850 causes -> the end_reason of a call that was never answered
CAUSES = {17: "busy", 18: "no-answer", 19: "no-answer", 21: "rejected", 16: "rejected",
          34: "congestion", 38: "congestion", 41: "congestion", 42: "congestion",
          44: "congestion", 47: "congestion", 1: "invalid-number", 28: "invalid-number",
          3: "invalid-number", 20: "unavailable", 27: "unavailable"}
# OriginateResponse Reason (Asterisk's AST_CONTROL_*) when no channel ever existed
REASONS = {1: "rejected", 3: "no-answer", 5: "busy", 8: "congestion"}
ORPHAN_GRACE = 5.0   # seconds to wait for a Hangup after a failed OriginateResponse


def row_dict(row: Call) -> dict:
    return {"id": row.id, "call_sid": row.call_sid, "account": row.account_id,
            "from_number": row.from_number, "to_number": row.to_number,
            "status": row.status, "ai": row.ai, "agent_id": row.agent_id,
            "max_duration": row.max_duration, "metadata": row.metadata,
            "webhook_url": row.webhook_url, "created_at": row.created_at, "amd": row.amd}


def _ts(event: dict) -> float:
    try:
        return float(event.get("Timestamp") or 0) or time.time()
    except ValueError:
        return time.time()


def _cause(event: dict) -> int | None:
    try:
        return int(event.get("Cause") or 0) or None
    except ValueError:
        return None


class CallTracker:
    def __init__(self, config, db: Callable, ami, redis, webhooks, registry, *, database):
        self.config = config
        self.database = database      # the Store's database (written on the DB thread)
        self._db = db                 # engine._db: run a blocking function on the DB thread
        self.ami = ami
        self.redis = redis            # redis.asyncio
        self.webhooks = webhooks
        self.registry = registry      # agi_server.calls.registry.Registry: every live call
        self.engine = ""              # this engine's id (agi_server.cluster.membership)
        self._events: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        # hooks the engine sets for its metrics: (status, end_reason) of each ended call;
        # (where) of each status the database did not take
        self.on_final: Callable[[str, str | None], None] | None = None
        self.on_db_error: Callable[[str], None] | None = None
        ami.add_listener(self._events.put_nowait)
        ami.on_login(self.reconcile)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-tracker")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for call in self.outbound_calls():
            call.cancel_timers()

    # -- registry --------------------------------------------------------------------------
    def track(self, row: Call) -> LiveCall:
        call = self.get(row.id)
        if call is None:
            call = LiveCall(id=row.id, account=row.account_id, direction=OUTBOUND,
                            from_number=row.from_number, to_number=row.to_number,
                            status=row.status, max_duration=row.max_duration, ai=row.ai,
                            row=row_dict(row))
            if row.answered_at is not None:
                call.answered_ts = ts_from_utc(row.answered_at)
            self.registry.add(call)
        return call

    def untrack(self, call: LiveCall) -> None:
        """Forget a call taken from the queue but not placed (the dialer tries it again)."""
        if self.registry.calls.get(call.id) is call:
            del self.registry.calls[call.id]
            call.cancel_timers()

    def get(self, call_id: str) -> LiveCall | None:
        """An outbound call this engine placed or adopted (inbound ones are not ours)."""
        call = self.registry.get(call_id)
        return call if call is not None and call.direction == OUTBOUND else None

    def outbound_calls(self) -> list[LiveCall]:
        return [c for c in self.registry.calls.values() if c.direction == OUTBOUND]

    # -- events ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("AMI event %s for %s not handled", event.get("Event"),
                              event.get("Uniqueid"))

    async def _handle(self, event: dict) -> None:
        call = self.get(event.get("Uniqueid", ""))
        if call is None or call.final:
            return
        kind = event.get("Event")
        if kind == "Newchannel":
            call.channel = event.get("Channel")
            call.confirmed = True
            if call.hangup_reason:      # asked to end before its channel existed
                await self._hangup_channel(call)
        elif kind == "Newstate":
            call.channel = event.get("Channel") or call.channel
            state = event.get("ChannelState")
            if state == "5":
                await self.advance(call, "ringing", _ts(event))
            elif state == "6":
                await self.answered(call, _ts(event))
        elif kind in ("HangupRequest", "SoftHangupRequest"):
            call.cause = call.cause or _cause(event)
        elif kind == "Hangup":
            call.cause = _cause(event) or call.cause
            await self.finish(call, _ts(event))
        elif kind == "OriginateResponse":
            call.confirmed = True
            if event.get("Response") == "Failure":
                try:
                    reason = int(event.get("Reason") or 0)
                except ValueError:
                    reason = 0
                if call.channel is None:
                    await self.finish(call, _ts(event), reason=REASONS.get(reason, "failed"))
                else:   # the Hangup event says more; end it from here only if it never comes
                    self._later(call, ORPHAN_GRACE, self.finish, call, time.time(),
                                REASONS.get(reason, "failed"))

    # -- transitions -----------------------------------------------------------------------
    async def advance(self, call: LiveCall, status: str, at: float, **changes) -> None:
        if call.final or RANK[status] <= RANK[call.status]:
            return
        if status == "ringing" and call.status != "initiated":
            return
        call.status = status
        changes["status"] = status
        if status == "ringing":
            changes["ringing_at"] = utc_from_ts(at)
        await self._record(call, status, at, changes)

    async def answered(self, call: LiveCall, at: float) -> None:
        if call.answered_ts is None and not call.final:
            call.answered_ts = at
            if call.max_duration:
                self._later(call, max(0.0, at + call.max_duration - time.time()),
                            self.hangup, call.id, "max-duration")
        await self.advance(call, "answered", at, answered_at=utc_from_ts(at))

    async def finish(self, call: LiveCall, at: float, reason: str | None = None) -> None:
        if call.final:
            return
        changes = {"ended_at": utc_from_ts(at), "cause": call.cause}
        if call.answered_ts is not None:
            status = "completed"
            changes["duration"] = round(max(0.0, at - call.answered_ts), 3)
            changes["end_reason"] = call.hangup_reason or "callee-hangup"
            if call.status != "answered":     # the answer was missed (AMI was down)
                await self.advance(call, "answered", call.answered_ts,
                                   answered_at=utc_from_ts(call.answered_ts))
        else:
            status = "failed"
            changes["duration"] = 0
            changes["end_reason"] = (call.hangup_reason or reason
                                     or CAUSES.get(call.cause or 0, "failed"))
        call.status = status
        changes["status"] = status
        call.cancel_timers()
        if self.on_final is not None:      # the engine's metrics
            self.on_final(status, changes["end_reason"])
        await self._record(call, status, at, changes)
        self.registry.release(call)
        try:
            await self.redis.zrem(redis_schema.ORIGINATE_QUEUE, call.id)
        except Exception:    # the queue entry is dropped again by the dialer; not worth a fault
            log.warning("call %s: could not drop it from the queue", call.id)
        log.info("call %s %s (%s)", call.id, status, changes["end_reason"])

    async def announce(self, call: LiveCall, status: str, at: float) -> bool:
        """Record (and send the webhook of) the status a call already has: `initiated`,
        when the dialer takes the call from the queue. False when it was not stored."""
        return await self._record(call, status, at, {})

    async def fail(self, call: LiveCall, reason: str) -> None:
        """End a call that never got a channel (refused at dial time, originate error)."""
        call.hangup_reason = call.hangup_reason or reason
        await self.finish(call, time.time())

    async def detected(self, call: LiveCall, answered_by: str, at: float, amd: dict,
                       extra: dict) -> None:
        """Answering-machine detection decided: store it on the row (answered_by, the
        `amd` JSON) and send the signed `call.amd` webhook (agi_server.calls.outbound)."""
        call.row["amd"] = amd
        await self._record(call, answered_by, at, {"answered_by": answered_by, "amd": amd},
                           event_type="call.amd", extra={"answeredBy": answered_by, **extra})

    async def _record(self, call: LiveCall, status: str, at: float, changes: dict, *,
                      event_type: str = "call.status", extra: dict | None = None) -> bool:
        try:
            event = await self._db(_persist, self.database, call.id, status, at, changes,
                                   self.config.webhook_secret, self.config.public_base_url,
                                   event_type, extra)
        except Exception:
            log.exception("call %s: status %s not stored", call.id, status)
            if self.on_db_error is not None:
                self.on_db_error("call-status")
            return False
        if event is not None:
            self.webhooks.submit(event)
        return True

    def _later(self, call: LiveCall, delay: float, fn, *args) -> None:
        def fire():
            task = asyncio.ensure_future(fn(*args))
            task.add_done_callback(_log_failure)
        call.later(delay, fire)

    # -- requests --------------------------------------------------------------------------
    async def hangup(self, call_id: str, reason: str) -> bool:
        """End a ringing or answered call (AMI Hangup; the AGI session if AMI is down)."""
        call = self.get(call_id)
        if call is None or call.final:
            return False
        call.hangup_reason = call.hangup_reason or reason
        if await self._hangup_channel(call):
            return True
        if call.session is not None:      # AMI is down: the session hangs up itself
            call.session.submit({"action": "hangup", "reason": reason})
            return True
        return False

    async def _hangup_channel(self, call: LiveCall) -> bool:
        # By name once Newchannel told it; before that by uniqueid, which Asterisk accepts
        # too (and if the channel does not exist yet, Newchannel sends this again).
        try:
            await self.ami.action("Hangup", {"Channel": call.channel or call.id, "Cause": "16"})
            return True
        except (AmiUnavailable, AmiError) as exc:
            log.info("call %s: hangup via AMI failed: %s", call.id, exc)
            return False

    # -- the AGI side ----------------------------------------------------------------------
    async def session_started(self, call_id: str) -> LiveCall | None:
        call = self.get(call_id)
        if call is None:
            row = await self._db(Call.get_or_none, Call.id == call_id)
            if row is None or row.direction != "outbound" or row.status in calls.FINAL:
                return None
            call = self.track(row)
        call.held = True
        await self.answered(call, time.time())
        return call

    async def session_ended(self, call: LiveCall) -> None:
        """The AGI session is over: the Hangup event normally ends the call; if AMI is down
        it never comes, so end it here after a grace period, at this moment."""
        call.held = False
        if not call.final:
            self._later(call, 3.0, self.finish, call, time.time())

    # -- reconnects ------------------------------------------------------------------------
    async def _mine(self, call_id: str) -> bool:
        """Placed by this engine (or by one from before engine ids): another live engine's
        call is its own, a dead one's is closed by agi_server.cluster.reclaim."""
        engine = await self.redis.get(redis_schema.call_engine_key(call_id))
        return engine in (None, self.engine)

    async def adopt(self) -> int:
        """At engine start, before the dialer runs: track the unfinished calls a previous
        run placed (their originated mark is set), so the first login's reconcile finds
        out what became of them. Calls not yet placed stay with the dialer."""
        adopted = 0
        for row in await self._db(_unfinished_outbound):
            # a mark without the `initiated` event (stored before any Originate) is a take
            # cut off before sending: the dialer places that one (Dialer._taken_unsent)
            if self.registry.get(row.id) is None and await self.redis.get(
                    redis_schema.originated_key(row.id)) == "sent" and await self._mine(
                        row.id) and await self._db(outbox.placed_before, row.id):
                self.track(row).originated_login = 0
                adopted += 1
        if adopted:
            log.info("adopted %d call(s) placed before this start", adopted)
        return adopted

    async def reconcile(self) -> None:
        """After each AMI login: bring every call sent before this login up to date from
        the live channels (events sent while we were not connected are lost)."""
        login = self.ami.stats["logins"]

        def stale(call: LiveCall) -> bool:
            return (not call.final and call.originated_login is not None
                    and call.originated_login < login)

        if not any(stale(c) for c in self.outbound_calls()):
            return
        try:
            reply = await self.ami.action("CoreShowChannels", as_list=True)
        except (AmiUnavailable, AmiError) as exc:
            log.warning("AMI reconcile skipped: %s", exc)
            return
        live = {e.get("Uniqueid"): e for e in reply if e.get("Event") == "CoreShowChannel"}
        checked = 0
        for call in self.outbound_calls():
            if not stale(call):      # checked again: sent after the snapshot, or ended
                continue
            checked += 1
            channel = live.get(call.id)
            if channel is not None:
                call.channel = channel.get("Channel") or call.channel
                call.confirmed = True
                if channel.get("ChannelState") == "6":
                    await self.answered(call, time.time() - _hms(channel.get("Duration")))
                elif channel.get("ChannelState") == "5":
                    await self.advance(call, "ringing", time.time())
            elif not call.in_session:
                # gone while we were not listening: its end was not observed
                await self.finish(call, time.time(),
                                  reason="lost" if call.confirmed else "originate-lost")
        log.info("AMI reconciled %d call(s)", checked)


def _hms(text: str | None) -> float:
    try:
        h, m, s = (int(x) for x in (text or "").split(":"))
        return h * 3600 + m * 60 + s
    except ValueError:
        return 0.0


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("call timer failed", exc_info=task.exception())


# -- database-thread functions -------------------------------------------------------------
def _unfinished_outbound() -> list[Call]:
    return list(Call.select().where(Call.direction == "outbound",
                                    Call.status.in_(("initiated", "ringing", "answered"))))


def _persist(database, call_id: str, status: str, at: float, changes: dict,
             global_secret: str, base_url: str = "", event_type: str = "call.status",
             extra: dict | None = None):
    """Update the row, add a CallEvent with the webhook body; returns what the sender
    needs, or None if there is no webhook URL. `base_url` prefixes recording URLs."""
    with database.atomic():
        if changes:
            Call.update(**changes).where(Call.id == call_id).execute()
        row = Call.get_by_id(call_id)
        account = Account.get_or_none(Account.id == row.account_id)
        url = row.webhook_url or (account.webhook_url if account else None)
        event = CallEvent.create(call=call_id, type=event_type, status=status,
                                 at=utc_from_ts(at), webhook_url=url)
        body = json.dumps({"id": event.id, "type": event_type, "callId": row.call_sid,
                           "status": status, "at": calls.iso(event.at), **(extra or {}),
                           "call": calls.call_json(row, base_url=base_url)},
                          separators=(",", ":"))
        event.payload = body
        event.save()
        if not url:
            return None
        secret = global_secret or (calls.webhook_secrets(row.account_id)
                                   if account else "")
    return {"event": event.id, "call": call_id, "account": row.account_id, "url": url,
            "body": body, "secret": secret,
            "created": utcnow()}
