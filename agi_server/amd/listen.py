"""Answering-machine detection on a live call: the detector (agi_server.amd.detector) fed by
the call's own audio over AudioSocket (agi_server.amd.audiosocket).

    outcome = await listen(session, sockets, settings)

runs `AudioSocket(<uuid>,<engine>)` on the answered channel through the AGI session and
feeds every frame Asterisk sends to a Detector; on its Result the engine ends the stream,
app_audiosocket returns, and the AGI session is free again, a frame or two after the
decision (the drop starts from there: agi_server.calls.outbound). If the stream ends first
(the callee hung up, or the audio never came), what was heard decides.

While it listens the AGI session is blocked in the application, as in a Dial: with
`bridged=True` (asyncAmd) live actions sent meanwhile go over AMI (agi_server.calls.bridged),
so the call goes on; otherwise they wait in the session's queue for the result.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from agi_server.agi.errors import AGIHangup
from agi_server.amd.detector import Beep, Detector, Result

log = logging.getLogger(__name__)

# the tuning fields the API takes (Twilio's names) -> the Detector's keywords, with limits
TUNING = {
    "timeout_ms": (2000, 60000),
    "speech_threshold_ms": (1000, 6000),
    "speech_end_threshold_ms": (500, 5000),
    "silence_timeout_ms": (2000, 10000),
}


@dataclass(frozen=True)
class Outcome:
    answered_by: str
    detection_ms: int             # audio heard until the decision
    beep_end_ms: int | None       # where the beep ended, in the same clock
    beeps: tuple[Beep, ...]
    frames: int                   # 20 ms frames Asterisk sent
    wall_s: float                 # from the AudioSocket command to the stream's end
    hung_up: bool = False         # the call ended while we listened


def detector_for(settings: dict) -> Detector:
    tuning = {k: int(settings[k]) for k in TUNING if settings.get(k) is not None}
    return Detector(settings.get("mode", "DetectMessageEnd"), **tuning)


async def listen(session, sockets, settings: dict) -> Outcome:
    detector = detector_for(settings)
    stream = sockets.expect()
    beeps: list[Beep] = []

    def on_audio(pcm: bytes) -> None:
        for event in detector.feed(pcm):
            if isinstance(event, Beep):
                beeps.append(event)
            elif isinstance(event, Result):
                stream.close()          # app_audiosocket returns: the AGI session is free

    stream.on_audio = on_audio
    session.audio = stream          # a live play while we listen needs it (bridged.py)
    started, hung_up = time.monotonic(), False
    try:
        if settings.get("async", True):
            await session.blocking("AudioSocket", stream.uuid, stream.address, alone=True)
        else:
            await session.raw.exec("AudioSocket", stream.uuid, stream.address)
    except AGIHangup:
        hung_up = True
    finally:
        session.audio = None
        stream.close()
        if stream.error is not None:
            log.warning("call %s: AudioSocket error %s", session.call_id, stream.error)
    if detector.result is None:         # the stream ended first: decide on what was heard
        detector.feed(b"")
    result = detector.result
    return Outcome(result.answered_by, result.at_ms, result.beep_end_ms, tuple(beeps),
                   stream.frames, round(time.monotonic() - started, 3), hung_up)
