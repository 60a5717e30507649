"""Recording a live call: MixMonitor on the session's channel, and finishing the file.

    start   EXEC MixMonitor(<asterisk spool>/<id>.wav,i(TRUNX_MIXMON_ID)): both directions
            mixed, from now; a timer asks the session to stop it at max_length
    stop    EXEC StopMixMonitor(<MixMonitor id>) in the session (DELETE, max_length); a
            hangup stops it too (MixMonitor closes its file as the channel goes)
    finish  in the background: wait until Asterisk closed the WAV, then sox makes the mp3
            or wav (silence trimmed if asked) in <data_dir>/recordings/<account>/, the
            duration is measured from the samples, the row and the action say "stopped"

The API's DELETE .../record waits on the row, so finishing is quick for short calls and
never blocks the call: the sox run is on a worker thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

from trunx import recordings
from trunx.media.transcode import encode_recording
from trunx.models import Recording, iso, utcnow

log = logging.getLogger(__name__)

MIXMON_VAR = "TRUNX_MIXMON_ID"
CLOSE_WAIT = 5.0        # seconds to wait for MixMonitor to close a stopped recording


class Recorder:
    def __init__(self, config, db, state, check):
        self.config = config
        self._db = db
        self._state = state            # ActionRunner.state: writes an action's hash
        self._check = check            # raises AGIHangup for a result of -1
        self._finishing: set[asyncio.Task] = set()
        self.on_ready = None           # async (recording id): its file is finished (webhook)

    async def start(self, s, rec_id: str, p: dict) -> tuple[str, dict]:
        path = recordings.asterisk_spool_file(self.config, rec_id)
        await asyncio.to_thread(os.makedirs, self.config.recording_spool_path, exist_ok=True)
        self._check(await s.raw.exec("MixMonitor", path, f"i({MIXMON_VAR})"), "MixMonitor")
        mixmon = await s.raw.get_variable(MIXMON_VAR)
        if not mixmon:
            await self._db(failed, rec_id, "mixmonitor-failed")
            return "failed", {"code": "record-failed", "message": "MixMonitor did not start"}
        timer = asyncio.get_running_loop().call_later(
            int(p.get("max_length", 14400)), s.submit,
            {"action": "record_stop", "id": "",
             "params": json.dumps({"recording": rec_id, "reason": "max-length"})})
        s.recordings[rec_id] = {"mixmon": mixmon, "timer": timer}
        await self._db(started, rec_id)
        return "recording", {"format": p.get("format")}

    async def stop(self, s, rec_id: str, reason: str) -> tuple[str, dict]:
        info = s.recordings.pop(rec_id, None)
        if info is None:
            return "completed", {"recording_uuid": rec_id, "note": "not recording"}
        info["timer"].cancel()
        self._check(await s.raw.exec("StopMixMonitor", info["mixmon"]), "StopMixMonitor")
        self.finish_later(rec_id, reason)
        return "completed", {"recording_uuid": rec_id}

    def session_ended(self, s) -> None:
        for rec_id, info in list(s.recordings.items()):
            info["timer"].cancel()
            self.finish_later(rec_id, "call-ended")
        s.recordings.clear()

    def finish_later(self, rec_id: str, reason: str) -> None:
        task = asyncio.ensure_future(self._finish(rec_id, reason))
        self._finishing.add(task)
        task.add_done_callback(self._done)

    async def drain(self, timeout: float = 30.0) -> None:
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=timeout)

    def _done(self, task: asyncio.Task) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("finishing a recording failed", exc_info=task.exception())

    async def _finish(self, rec_id: str, reason: str) -> None:
        raw = recordings.spool_file(self.config, rec_id)
        await _closed(raw)
        rec = await self._db(Recording.get_or_none, Recording.id == rec_id)
        if rec is None:
            return
        dst = recordings.final_file(self.config, rec.account_id, rec_id, rec.format)
        try:
            seconds, size = await asyncio.to_thread(_encode, raw, dst, rec.format,
                                                    rec.trim_silence)
        except Exception as exc:
            log.warning("recording %s: not finished: %s", rec_id, exc)
            await self._db(failed, rec_id, str(exc)[:200])
            await self._state(rec_id, status="failed", ended_at=iso(utcnow()),
                              error={"code": "record-failed", "message": str(exc)[:300]})
            return
        await self._db(_stopped, rec_id, dst, seconds, size, reason)
        await self._state(rec_id, status="stopped", ended_at=iso(utcnow()),
                          result={"duration": round(seconds, 3), "format": rec.format,
                                  "end_reason": reason, "size_bytes": size})
        log.info("recording %s: %.2f s %s (%s)", rec_id, seconds, rec.format, reason)
        if self.on_ready is not None:
            await self.on_ready(rec_id)


async def _closed(path: str, timeout: float = CLOSE_WAIT) -> None:
    """Wait until Asterisk has closed a WAV: format_wav writes the data size into the
    header when it closes the file, so the header then agrees with the file's size."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        size, closed = _wav_state(path)
        if closed and size == last:
            return
        last = size
        await asyncio.sleep(0.05)
    log.info("%s: not closed after %.0fs; taking what is there", path, timeout)


def _wav_state(path: str) -> tuple[int, bool]:
    """(size, whether the header's data size agrees with it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(44)
            size = f.seek(0, os.SEEK_END)
    except FileNotFoundError:
        return -1, False
    return size, len(head) == 44 and int.from_bytes(head[40:44], "little") == size - 44


def _encode(raw: str, dst: str, fmt: str, trim: bool) -> tuple[float, int]:
    """Worker thread: the finished file, its duration and size; the raw one goes."""
    seconds = encode_recording(raw, dst, fmt, trim_silence=trim)
    size = os.path.getsize(dst)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(raw)
    return seconds, size


# -- database-thread functions ---------------------------------------------------------------
def started(rec_id: str) -> None:
    Recording.update(status="recording", started_at=utcnow()).where(
        Recording.id == rec_id).execute()


def _stopped(rec_id, path, seconds, size, reason) -> None:
    Recording.update(status="stopped", file_path=path, duration=seconds, size_bytes=size,
                     end_reason=reason, ended_at=utcnow()).where(
        Recording.id == rec_id).execute()


def failed(rec_id, error) -> None:
    Recording.update(status="failed", error=str(error)[:200], ended_at=utcnow()).where(
        Recording.id == rec_id).execute()
