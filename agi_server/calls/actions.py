"""Live-call actions, the engine's half: what each one does on the call's AGI session.

admin_api.call_actions.service (the API) checks the call, stages media and puts {call,
action, id, params} on the command stream; the CommandReader hands it to the registry,
which queues it on the session of the call's LiveCall (agi_server.calls.registry), whose
channel serves it between (or by stopping) prompts and waits; the ActionRunner below
carries it out on the AGI session that holds the channel and writes its progress into the
action's Redis hash.

    play      STREAM FILE of the staged file, `loop` times (0: until stopped), stoppable
    speak     the same, once, with every DTMF key as escape: the caller's key cuts it off
    dtmf      EXEC SendDTMF(digits,200,200): 200 ms tones with 200 ms gaps
    record    EXEC MixMonitor, both directions mixed, stopped by EXEC StopMixMonitor on
              DELETE or at max_length, or by the hangup; sox makes the mp3/wav (see
              agi_server.calls.recorder)
    transfer  EXEC Dial(PJSIP/<to>@<trunk>): AMI DialEnd ANSWER means the caller is
              bridged there, so the original call ends for us (answer_url gets a signed
              webhook, the call stops taking actions); any other DIALSTATUS returns the
              caller to the call

Sessions exist for answered plain outbound calls (agi_server.calls.outbound) and inbound IVR
calls (engine.ivr_call); each says so in Redis (`trunx:live:{call}`, status in-progress,
then transferred once a transfer is answered) while it lasts, which is what the API
checks; agi_server.calls.live_index writes those changes in batches, off the call's path.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time

from agi_server.agi import commands
from agi_server.agi.errors import AGIHangup
from agi_server.calls import attended, bridged, recorder
from agi_server.calls.live_index import LiveIndex
from agi_server.calls.recorder import Recorder
from agi_server.calls.session import CallSession
from agi_server.ivr.runner import ALL_DTMF
from trunx import redis_schema
from trunx.calls import ensure_webhook_secret, utc_from_ts
from trunx.media import make_stager
from trunx.models import iso, utcnow

log = logging.getLogger(__name__)

RUNNING = {"play": "playing", "speak": "speaking", "dtmf": "sending", "record": "starting",
           "record_stop": "stopping", "transfer": "transferring"}
# an attended transfer's complete/cancel: taken by the consult loop (agi_server.calls.attended)
# while it runs; after it, the transfer's own state already says how it ended
CONSULT_CONTROL = frozenset({attended.COMPLETE, attended.CANCEL})


def _now() -> str:
    return iso(utcnow())


class ActionRunner:
    def __init__(self, config, db, redis, ami, webhooks):
        self.config = config
        self._db = db
        self.redis = redis
        self.ami = ami
        self.webhooks = webhooks
        self.recorder = Recorder(config, db, self.state, _check)
        self.index = LiveIndex(redis, delay=config.live_batch_delay)
        self.stats: dict[str, int] = {}
        self._transfers: dict[str, tuple] = {}     # uniqueid -> (session, action id, params)
        self._tasks: set[asyncio.Task] = set()
        # hook: calls whose AGI session is in a Dial are acted on over AMI
        self.bridged_actions = bridged.BridgedActions(ami) if ami is not None else None
        if ami is not None:
            ami.add_listener(self._on_ami_event)

    # -- state -------------------------------------------------------------------------------
    async def state(self, action_id: str, **fields) -> None:
        if not action_id:
            return
        values = {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                  for k, v in fields.items() if v is not None}
        try:
            await self.redis.hset(redis_schema.action_key(action_id), mapping=values)
        except Exception as exc:   # the action still happens; only its report is lost
            log.warning("action %s: state not written: %s", action_id, exc)

    async def refuse(self, command: dict, code: str, message: str) -> None:
        """An action that no session will run (the call ended before it got there)."""
        if command.get("action") in CONSULT_CONTROL:
            return          # the transfer's state is its own (failed or ended already)
        await self.state(command.get("id", ""), status="failed", ended_at=_now(),
                         error={"code": code, "message": message})
        if command.get("action") == "record":
            await self._db(recorder.failed, command.get("id"), code)
        elif command.get("action") in ("play", "speak"):
            try:
                await self._unstage(json.loads(command.get("params") or "{}").get("name"))
            except ValueError:
                pass

    # -- running one -------------------------------------------------------------------------
    async def run(self, s: CallSession, command: dict) -> None:
        kind, action_id = command.get("action"), command.get("id", "")
        try:
            params = json.loads(command.get("params") or "{}")
        except ValueError:
            params = {}
        if kind in CONSULT_CONTROL:
            log.info("call %s: %s for transfer %s: no consult running", s.call_id, kind,
                     action_id)
            return
        handler = getattr(self, f"_{kind}", None) if kind in RUNNING else None
        if handler is None:
            await self.refuse(command, "unknown-action", f"no action {kind!r}")
            return
        self.stats[kind] = self.stats.get(kind, 0) + 1
        await self.state(action_id, status=RUNNING[kind], started_at=_now())
        log.info("call %s: %s %s", s.call_id, kind, action_id)
        try:
            status, result = await handler(s, action_id, params)
        except AGIHangup:
            if not s.handed_off:
                await self.state(action_id, status="failed", ended_at=_now(),
                                 error={"code": "call-ended", "message": "the call ended"})
            raise
        except Exception as exc:
            log.exception("call %s: %s %s failed", s.call_id, kind, action_id)
            await self.state(action_id, status="failed", ended_at=_now(),
                             error={"code": "action-failed", "message": str(exc)[:300]})
            return
        ended = None if status in ("recording", "answered") else _now()
        if status == "failed":
            await self.state(action_id, status=status, ended_at=ended, error=result)
        else:
            await self.state(action_id, status=status, ended_at=ended, result=result)
        if s.handed_off:
            raise AGIHangup("transferred")

    # -- the actions -------------------------------------------------------------------------
    async def _play(self, s, action_id, p):
        try:
            return await s.play_media(p["file"], int(p.get("loop", 1)))
        finally:
            await self._unstage(p.get("name"))

    async def _speak(self, s, action_id, p):
        try:
            return await s.play_media(p["file"], 1, ALL_DTMF)
        finally:
            await self._unstage(p.get("name"))

    async def _dtmf(self, s, action_id, p):
        # SendDTMF(digits, timeout_ms = the gap between tones, duration_ms = each tone)
        _check(await s.raw.exec("SendDTMF", p["digits"], "200", "200"), "SendDTMF")
        return "completed", {"digits": p["digits"]}

    async def _record(self, s, action_id, p):
        return await self.recorder.start(s, action_id, p)

    async def _record_stop(self, s, action_id, p):
        if "helper" in s.recordings.get(p.get("recording", ""), {}):   # started bridged
            return await bridged.act(self, s, "record_stop", action_id, p)
        return await self.recorder.stop(s, p.get("recording", ""), p.get("reason", "api"))

    async def _transfer(self, s, action_id, p):
        to = p["to"]
        if p.get("mode") == "attended":          # hook: agi_server.calls.attended
            return await attended.consult(self, s, action_id, p)
        if await self._suppressed(s.account, to):
            return "failed", {"code": "number-suppressed",
                              "message": f"{to} is on this account's do-not-call list"}
        original = None
        if p.get("caller_id"):
            original = await s.raw.get_variable("CALLERID(num)")
            await s.raw.run(commands.set_variable("CALLERID(num)", p["caller_id"]))
        self._transfers[s.uniqueid] = (s, action_id, p)
        try:
            _check(await s.dial(f"PJSIP/{to}@{self.config.trunk_endpoint}",
                                str(int(self.config.transfer_timeout))), "Dial")
            status = await s.raw.get_variable("DIALSTATUS") or "UNKNOWN"
        except AGIHangup:
            if s.handed_off:           # the caller hung up on the far end: it was theirs
                return "completed", {"to": to, "dial_status": "ANSWER"}
            raise
        finally:
            self._transfers.pop(s.uniqueid, None)
        if status == "ANSWER":
            if not s.handed_off:       # AMI missed DialEnd: say it now, late
                await self._answered(s, action_id, p, time.time())
            with contextlib.suppress(AGIHangup):
                await s.raw.hangup()   # the bridge is over: so is the call
            return "completed", {"to": to, "dial_status": status}
        if original is not None:
            await s.raw.run(commands.set_variable("CALLERID(num)", original))
        log.info("call %s: transfer to %s failed (%s); back to the call", s.call_id, to, status)
        return "failed", {"code": "transfer-failed", "dial_status": status,
                          "message": f"the transfer to {to} ended with {status}; the caller "
                                     "is back on the call"}

    # -- hooks: a call in a Dial, acted on over AMI (agi_server.calls.bridged) ---------------
    def bridged_changed(self, s: CallSession) -> None:
        """The API reads `bridged` to refuse what cannot run on a bridged call."""
        self.index.update(s.call_id, bridged="1" if s.bridged else "")

    def run_bridged(self, s: CallSession, command: dict) -> None:
        task = asyncio.ensure_future(self._run_bridged(s, command))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _run_bridged(self, s: CallSession, command: dict) -> None:
        kind, action_id = command.get("action"), command.get("id", "")
        if kind == "hangup":
            if s.on_hangup:
                s.on_hangup(command.get("reason", "api"))
            if self.bridged_actions is not None:
                await self.bridged_actions.hangup(s.channel_name)
            return
        if kind in CONSULT_CONTROL:
            return
        try:
            params = json.loads(command.get("params") or "{}")
        except ValueError:
            params = {}
        if kind not in RUNNING:
            await self.refuse(command, "unknown-action", f"no action {kind!r}")
            return
        self.stats[kind] = self.stats.get(kind, 0) + 1
        await self.state(action_id, status=RUNNING[kind], started_at=_now(), via="bridge")
        log.info("call %s: %s %s over AMI (bridged)", s.call_id, kind, action_id)
        try:
            status, result = await bridged.act(self, s, kind, action_id, params)
        except bridged.BridgedError as exc:
            status, result = "failed", {"code": exc.code, "message": exc.message}
        except Exception as exc:
            log.exception("call %s: %s %s failed over AMI", s.call_id, kind, action_id)
            status, result = "failed", {"code": "action-failed", "message": str(exc)[:300]}
        finally:
            if kind in ("play", "speak"):
                await self._unstage(params.get("name"))
        if status == "failed" and kind == "record":
            await self._db(recorder.failed, action_id, result.get("code"))
        ended = None if status in ("recording", "answered") else _now()
        if status == "failed":
            await self.state(action_id, status=status, ended_at=ended, error=result)
        else:
            await self.state(action_id, status=status, ended_at=ended, result=result)

    def run_soon(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def recording_started(self, rec_id: str) -> None:
        await self._db(recorder._started, rec_id)

    async def suppressed(self, account: str, number: str) -> bool:
        return await self._suppressed(account, number)

    async def answered(self, s: CallSession, action_id: str, p: dict) -> None:
        """A transfer made outside the AGI session was answered: the call is handed off."""
        await self._answered(s, action_id, p, time.time())

    # -- transfers: the answer, from AMI -----------------------------------------------------
    def _on_ami_event(self, event: dict) -> None:
        if event.get("Event") != "DialEnd" or event.get("DialStatus") != "ANSWER":
            return
        pending = self._transfers.get(event.get("Uniqueid", ""))
        if pending is not None and not pending[0].handed_off:
            s, action_id, p = pending
            task = asyncio.ensure_future(self._answered(s, action_id, p, _ts(event)))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    async def _answered(self, s, action_id: str, p: dict, at: float) -> None:
        if s.handed_off:
            return
        s.handed_off = True
        log.info("call %s: transferred to %s", s.call_id, p["to"])
        await self.state(action_id, status="answered", answered_at=iso(utc_from_ts(at)))
        self.index.update(s.call_id, status="transferred")   # the API now answers 409
        if s.on_handoff is not None:
            try:
                await s.on_handoff(at)
            except Exception:
                log.exception("call %s: transfer hand-off not recorded", s.call_id)
        if p.get("answer_url"):
            await self._answer_webhook(s, action_id, p, at)

    async def _answer_webhook(self, s, action_id, p, at) -> None:
        body = json.dumps({"type": "call.transfer", "status": "answered",
                           "transfer_uuid": action_id, "call_uuid": s.call_id, "to": p["to"],
                           "caller_id": p.get("caller_id"), "at": iso(utc_from_ts(at))},
                          separators=(",", ":"))
        try:
            secret = self.config.webhook_secret or await self._db(ensure_webhook_secret,
                                                                   s.account)
        except Exception:
            log.exception("call %s: no webhook secret; answer_url not called", s.call_id)
            return
        # Not a CallEvent row (an inbound call has none yet): retried in memory only.
        self.webhooks.submit({"event": "evt_" + secrets.token_hex(8), "call": s.call_id,
                              "url": p["answer_url"], "body": body, "secret": secret})

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("live-call task failed", exc_info=task.exception())

    async def session_ended(self, s: CallSession) -> None:
        """The call is over: recordings still running end with it (MixMonitor closes its
        file as the channel goes), and actions that never ran say so."""
        self.recorder.session_ended(s)
        for command in s.drain():
            if command.get("action") not in (None, "hangup") and command.get("id"):
                await self.refuse(command, "call-ended", "the call ended before the action ran")

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for recordings being finished and hand-offs being told (stop, tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        await self.recorder.drain(timeout)

    # -- helpers -----------------------------------------------------------------------------
    async def _unstage(self, name: str | None) -> None:
        if not name:
            return
        try:
            await asyncio.to_thread(make_stager(self.config).delete, name)
        except Exception as exc:
            log.warning("staged %s not removed: %s", name, exc)

    async def _suppressed(self, account: str, number: str) -> bool:
        try:
            if await self.redis.sismember(redis_schema.dnc_key(account), number):
                return True
        except Exception:
            pass
        from trunx import dnc
        return await self._db(dnc.is_suppressed, account, number)


# -- helpers ---------------------------------------------------------------------------------
def _check(response, what: str):
    try:
        code = int(response.result)
    except (TypeError, ValueError):
        code = 0
    if code == -1:
        raise AGIHangup(f"{what}: channel hung up")
    return response


def _ts(event: dict) -> float:
    try:
        return float(event.get("Timestamp") or 0) or time.time()
    except ValueError:
        return time.time()
