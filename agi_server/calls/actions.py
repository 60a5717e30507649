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
    transfer  blind: agi_server.calls.transfer (a Dial in the session; the hand-off when
              the target answers); attended: agi_server.calls.attended (music on hold, a
              consult leg, then complete or cancel)

While the session is in a Dial (an IVR transfer, an agent bridge, a transfer's bridge) the
AGI channel cannot take commands: actions then run over AMI (agi_server.calls.bridged).

Sessions exist for answered plain outbound calls (agi_server.calls.outbound) and inbound IVR
calls (engine.ivr_call); each says so in Redis (`trunx:live:{call}`, status in-progress,
then transferred once a transfer is answered) while it lasts, which is what the API
checks; agi_server.calls.live_index writes those changes in batches, off the call's path.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from agi_server.agi.commands import ALL_DTMF
from agi_server.agi.errors import AGIHangup
from agi_server.calls import attended, bridged, control, recorder, speech, transfer
from agi_server.calls.live_index import LiveIndex
from agi_server.calls.recorder import Recorder
from agi_server.calls.session import CallSession
from trunx import logs, outbox, redis_schema
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
        self.metrics = None     # agi_server.metrics.EngineMetrics, set by the engine
        # the session on an AGI channel (by its uniqueid): set by the registry
        self.session_for_channel = lambda uniqueid: None
        self._tasks: set[asyncio.Task] = set()
        # hook: calls whose AGI session is in a Dial are acted on over AMI
        self.bridged_actions = bridged.BridgedActions(ami) if ami is not None else None
        if ami is not None:
            ami.add_listener(lambda event: transfer.on_dial_end(self, event))

    # -- state -------------------------------------------------------------------------------
    async def state(self, action_id: str, **fields) -> None:
        if not action_id:
            return
        values = {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                  for k, v in fields.items() if v is not None}
        key = redis_schema.action_key(action_id)
        try:
            await self.redis.hset(key, mapping=values)
            if fields.get("status") in outbox.FINAL_ACTION:
                # the final state, kept in the database for a Redis that restarts empty
                state = await self.redis.hgetall(key)
                await self._db(outbox.record_state, action_id, state)
        except Exception as exc:   # the action still happens; only its report is lost
            log.warning("action %s: state not written: %s", action_id, exc)
            if self.metrics is not None:
                self.metrics.redis_errors.labels("action-state").inc()

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

    async def _ended(self, action_id: str, status: str, result: dict) -> None:
        """What an action came to, over AGI or AMI: a recording or an answered transfer
        goes on (no end yet); a failure carries its error, anything else its result."""
        ended = None if status in ("recording", "answered") else _now()
        if status == "failed":
            await self.state(action_id, status=status, ended_at=ended, error=result)
        else:
            await self.state(action_id, status=status, ended_at=ended, result=result)

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
        self._latency(kind, command)
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
        await self._ended(action_id, status, result)
        if s.handed_off:
            raise AGIHangup("transferred")

    def _latency(self, kind: str, command: dict) -> None:
        """From the API's XADD (the stream entry's milliseconds, agi_server.calls.intake)
        to now, when the action starts."""
        queued = command.get("queued_ms")
        if self.metrics is not None and queued and queued.isdigit():
            self.metrics.action_latency.labels(kind).observe(
                max(0.0, time.time() - int(queued) / 1000))

    # -- the actions -------------------------------------------------------------------------
    async def _play(self, s, action_id, p):
        try:
            return await s.play_media(p["file"], int(p.get("loop", 1)))
        finally:
            await self._unstage(p.get("name"))

    async def _speak(self, s, action_id, p):
        """Part after part (agi_server.calls.speech); a key or an action ends them all."""
        return await self._speak_parts(
            action_id, p, lambda part: s.play_media(part["file"], 1, ALL_DTMF))

    async def _speak_parts(self, action_id, p, play):
        parts = speech.Parts(self.redis, action_id, p)
        part = p
        try:
            while True:
                try:
                    status, result = await play(part)
                finally:
                    await self._unstage(part.get("name"))
                if status != "completed":
                    return status, result
                try:
                    part = await parts.next()
                except speech.SpeechFailed as exc:
                    return "failed", {"code": exc.code, "message": exc.message}
                if part is None:
                    return status, result
        finally:
            for name in await parts.close():
                await self._unstage(name)

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
        if p.get("mode") == "attended":          # agi_server.calls.attended
            return await attended.consult(self, s, action_id, p)
        return await transfer.blind(self, s, action_id, p)

    # -- hooks: a call in a Dial, acted on over AMI (agi_server.calls.bridged) ---------------
    def bridged_changed(self, s: CallSession) -> None:
        """The API reads `bridged` to refuse what cannot run on a bridged call."""
        self.index.update(s.call_id, bridged="1" if s.bridged else "")

    def run_bridged(self, s: CallSession, command: dict) -> None:
        task = asyncio.ensure_future(self._run_bridged(s, command))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _run_bridged(self, s: CallSession, command: dict) -> None:
        logs.bind(call_id=s.call_id, account_id=s.account)   # its own task: lines name the call
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
        self._latency(kind, command)
        await self.state(action_id, status=RUNNING[kind], started_at=_now(), via="bridge")
        log.info("call %s: %s %s over AMI (bridged)", s.call_id, kind, action_id)
        try:
            if kind == "speak":          # part after part, each over its own helper
                status, result = await self._speak_parts(
                    action_id, params, lambda part: bridged.act(self, s, kind, action_id,
                                                                part))
            else:
                status, result = await bridged.act(self, s, kind, action_id, params)
        except bridged.BridgedError as exc:
            status, result = "failed", {"code": exc.code, "message": exc.message}
        except Exception as exc:
            log.exception("call %s: %s %s failed over AMI", s.call_id, kind, action_id)
            status, result = "failed", {"code": "action-failed", "message": str(exc)[:300]}
        finally:
            if kind == "play":
                await self._unstage(params.get("name"))
        if status == "failed" and kind == "record":
            await self._db(recorder.failed, action_id, result.get("code"))
        await self._ended(action_id, status, result)

    def run_soon(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def recording_started(self, rec_id: str) -> None:
        await self._db(recorder.started, rec_id)

    async def suppressed(self, account: str, number: str) -> bool:
        return await control.is_suppressed(account, number, redis=self.redis, db=self._db)

    async def answered(self, s: CallSession, action_id: str, p: dict) -> None:
        """A transfer made outside the AGI session was answered: the call is handed off."""
        await transfer.hand_off(self, s, action_id, p, time.time())

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

# -- helpers ---------------------------------------------------------------------------------
def _check(response, what: str):
    try:
        code = int(response.result)
    except (TypeError, ValueError):
        code = 0
    if code == -1:
        raise AGIHangup(f"{what}: channel hung up")
    return response
