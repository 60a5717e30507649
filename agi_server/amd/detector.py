"""Answering-machine detection: who answered, and where a voicemail greeting ends.

A sans-IO core: it is fed the answered call's audio (8 kHz signed-linear 16-bit mono, any
chunking; it works on 20 ms frames) and returns events; it never reads a socket or a clock.

    d = Detector(mode="DetectMessageEnd")
    for event in d.feed(pcm):          # bytes; b"" means the audio ended
        ...                            # SpeechStarted, SilenceAfterSpeech, Beep, Fax, Result...

Per frame: energy-based voice activity against an adaptive noise floor (the minimum frame
energy of the last few seconds), and, only for frames above the floor, a bank of Goertzel
filters (one matrix product: a DFT at chosen frequencies is what a Goertzel filter computes)
over 400-2,200 Hz. A frame is tonal when one filter holds most of its energy; a run of
tonal frames at one frequency and a steady level, at least `beep_min_ms` long, is a tone.
After speech a tone is a beep (reported when it ends, with its end); before any speech a
1,100 Hz tone of about half a second is a fax's CNG, a long 2,100 Hz tone its CED.

The decision follows Twilio's machine detection and its names (answeredBy):
    speech longer than speech_threshold_ms              -> machine ("machine_start")
    speech, then silence of speech_end_threshold_ms     -> "human"
    no speech within silence_timeout_ms                 -> "unknown"
    a fax tone before speech                            -> "fax"
  mode "Enable" reports that first decision. "DetectMessageEnd" waits, on a machine, for
  the greeting's end: a beep ("machine_end_beep"), silence of end_silence_ms after speech
  ("machine_end_silence"), or timeout_ms ("machine_end_other").
One Result is returned, once; lower-level events keep coming until the audio ends.
"""
from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import numpy as np

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
ANSWERED_BY = ("human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown")
MODES = ("Enable", "DetectMessageEnd")


# -- events: times are milliseconds of audio since the first sample fed -------------------
@dataclass(frozen=True)
class SpeechStarted:
    at_ms: int


@dataclass(frozen=True)
class SilenceAfterSpeech:
    at_ms: int             # when the silence reached the threshold that reported it
    speech_ms: int         # from the first speech to the last speech before the silence


@dataclass(frozen=True)
class Human:
    at_ms: int


@dataclass(frozen=True)
class Machine:
    at_ms: int


@dataclass(frozen=True)
class Beep:
    end_ms: int            # where the tone stopped: a drop starts here
    freq_hz: float
    duration_ms: int


@dataclass(frozen=True)
class Fax:
    at_ms: int
    freq_hz: float


@dataclass(frozen=True)
class Timeout:
    at_ms: int


@dataclass(frozen=True)
class Result:
    answered_by: str       # one of ANSWERED_BY
    at_ms: int             # when the detector decided
    beep_end_ms: int | None = None


@functools.lru_cache(maxsize=8)
def _filter_bank(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The Goertzel bank's frequencies and its (2F, N) cos/sin matrix, one per band for
    every detector: 300 calls each holding their own 230 KB copy spill the CPU's caches."""
    freqs = np.arange(lo - 20, hi + 21, 20, dtype=np.float64)
    n = np.arange(FRAME_SAMPLES)
    phase = 2 * np.pi * np.outer(freqs, n) / RATE
    bank = np.vstack([np.cos(phase), np.sin(phase)])
    freqs.setflags(write=False)
    bank.setflags(write=False)
    return freqs, bank


class Detector:
    def __init__(self, mode: str = "DetectMessageEnd", *, timeout_ms: int = 30000,
                 speech_threshold_ms: int = 2400, speech_end_threshold_ms: int = 1200,
                 silence_timeout_ms: int = 5000, end_silence_ms: int = 1500,
                 beep_min_ms: int = 120, beep_band_hz: tuple[float, float] = (400, 2200),
                 tonality: float = 0.6, vad_margin_db: float = 9.0,
                 vad_floor_dbfs: float = -50.0, floor_window_ms: int = 3000):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.timeout_ms = timeout_ms
        self.speech_threshold_ms = speech_threshold_ms
        self.speech_end_threshold_ms = speech_end_threshold_ms
        self.silence_timeout_ms = silence_timeout_ms
        self.end_silence_ms = end_silence_ms
        self.beep_min_ms = beep_min_ms
        self.tonality = tonality
        self._margin = 10 ** (vad_margin_db / 10)
        # energies are mean squares of samples scaled to [-1, 1)
        self._abs_floor = 10 ** (vad_floor_dbfs / 10)
        # the floor: the minimum energy of the last `_window` frames, kept as a monotonic
        # queue of (frame number, energy) so each frame costs O(1), not a scan of 150
        self._window = max(1, floor_window_ms // FRAME_MS)
        self._floor: deque[tuple[int, float]] = deque()
        self._frames = 0
        self._freqs, self._bank = _filter_bank(*beep_band_hz)
        self._nf = len(self._freqs)
        self._buf = bytearray()
        self._ms = 0                    # audio consumed, at the end of the current frame
        self.result: Result | None = None
        self.ended = False
        # speech state
        self._speech_start: int | None = None   # first speech of the answer
        self._last_speech: int | None = None    # end of the last speech frame
        self._run = 0                            # consecutive speech frames
        self._silence_reported = False
        self._machine = False
        self._human = False
        # tone state: frames in the current run of tonal frames at one frequency
        self._tone: list[tuple[int, float, float]] = []   # (end_ms, freq, energy)

    # -- the interface ---------------------------------------------------------------------
    def feed(self, data: bytes) -> list:
        """Events caused by `data` (b"": the audio ended). Any chunking gives the same
        events; a trailing part-frame waits for the rest."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("feed() takes bytes of 8 kHz s16le mono audio")
        if self.ended:
            return []
        events: list = []
        if not data:
            self.ended = True
            self._finish_tone(events)
            if self.result is None:
                self._decide(events, "machine_end_other" if self._machine else "unknown")
            return events
        if not self._buf and len(data) == FRAME_BYTES:     # the usual: one whole frame
            frames = np.frombuffer(data, "<i2").reshape(1, FRAME_SAMPLES)
        else:
            self._buf += data
            usable = len(self._buf) - len(self._buf) % FRAME_BYTES
            if not usable:
                return events
            frames = np.frombuffer(bytes(self._buf[:usable]), "<i2").reshape(-1, FRAME_SAMPLES)
            del self._buf[:usable]
        for frame in frames:
            self._ms += FRAME_MS
            self._frame(frame.astype(np.float64) / 32768.0, events)
        return events

    # -- one frame -------------------------------------------------------------------------
    def _frame(self, x: np.ndarray, events: list) -> None:
        energy = float(np.dot(x, x)) / FRAME_SAMPLES
        floor, n = self._floor, self._frames
        while floor and floor[-1][1] >= energy:
            floor.pop()
        floor.append((n, energy))
        if floor[0][0] <= n - self._window:
            floor.popleft()
        self._frames = n + 1
        threshold = max(self._abs_floor, floor[0][1] * self._margin)
        active = energy > threshold
        tone = self._tonal(x, energy) if active else None
        if tone is not None and self._same_tone(tone, energy):
            self._tone.append((self._ms, tone, energy))
            self._check_tone_timeouts(events)
            return
        self._finish_tone(events)
        if tone is not None:
            self._tone = [(self._ms, tone, energy)]
            return
        self._voice(active, events)
        self._check_timeouts(events)

    def _tonal(self, x: np.ndarray, energy: float) -> float | None:
        """The frequency holding at least `tonality` of the frame's energy, or None."""
        proj = self._bank @ x
        power = proj[:self._nf] ** 2 + proj[self._nf:] ** 2
        k = int(np.argmax(power))
        # a sine at a filter's frequency, amplitude A: |X|^2 = (A N / 2)^2, energy A^2 / 2,
        # so share is 1 for a pure tone and small for speech or noise
        share = 2.0 * float(power[k]) / (FRAME_SAMPLES * FRAME_SAMPLES * energy)
        if share < self.tonality or k == 0 or k == self._nf - 1:
            return None
        a, b, c = power[k - 1], power[k], power[k + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) else 0.0
        return float(self._freqs[k] + 20.0 * shift)

    def _same_tone(self, freq: float, energy: float) -> bool:
        if not self._tone:
            return False
        _, f0, e0 = self._tone[0]
        return abs(freq - f0) <= 40.0 and 0.5 < energy / e0 < 2.0

    def _tone_ms(self) -> int:
        return len(self._tone) * FRAME_MS

    def _finish_tone(self, events: list) -> None:
        """A run of tonal frames ended: a tone if long enough, else speech-like sound."""
        if not self._tone:
            return
        run, self._tone = self._tone, []
        duration = len(run) * FRAME_MS
        freq = float(np.median([f for _, f, _ in run]))
        end = run[-1][0]
        if duration < self.beep_min_ms - FRAME_MS:   # part-frames at both ends
            for _ in run:                             # too short for a tone: count as sound
                self._voice(True, events)
            return
        if self._speech_start is None:
            if self._fax_tone(freq, duration):
                events.append(Fax(end, freq))
                self._decide(events, "fax")
            return
        events.append(Beep(end, freq, duration))
        if self.result is None:
            if not self._machine:
                self._machine = True
                events.append(Machine(end))
            self._decide(events, "machine_end_beep" if self.mode == "DetectMessageEnd"
                         else "machine_start", beep_end_ms=end)
        # the greeting is over: silence from here is not "after speech"
        self._last_speech = end
        self._silence_reported = True

    @staticmethod
    def _fax_tone(freq: float, duration: int) -> bool:
        cng = abs(freq - 1100) <= 50 and 350 <= duration <= 800
        ced = abs(freq - 2100) <= 50 and duration >= 1500
        return cng or ced

    def _check_tone_timeouts(self, events: list) -> None:
        # a CED lasts seconds: say fax as soon as it is long enough, not when it stops
        if self._speech_start is None and self.result is None:
            freq = self._tone[0][1]
            if abs(freq - 2100) <= 50 and self._tone_ms() >= 1500:
                events.append(Fax(self._ms, freq))
                self._decide(events, "fax")
        self._check_timeouts(events)

    def _voice(self, active: bool, events: list) -> None:
        if active:
            self._run += 1
            if self._run < 3:     # 60 ms of sound before it counts: clicks are not speech
                return
            if self._speech_start is None:
                self._speech_start = self._ms - 3 * FRAME_MS
                events.append(SpeechStarted(self._speech_start))
            self._last_speech = self._ms
            self._silence_reported = False
            if (not self._machine and not self._human
                    and self._ms - self._speech_start > self.speech_threshold_ms):
                self._machine = True
                events.append(Machine(self._ms))
                if self.mode == "Enable":
                    self._decide(events, "machine_start")
            return
        self._run = 0
        if self._last_speech is None or self._silence_reported:
            return
        silence = self._ms - self._last_speech
        if not self._machine and silence >= self.speech_end_threshold_ms:
            self._silence_reported = True
            events.append(SilenceAfterSpeech(self._ms, self._last_speech - self._speech_start))
            if not self._human:
                self._human = True
                events.append(Human(self._ms))
                self._decide(events, "human")
        elif self._machine and silence >= self.end_silence_ms:
            self._silence_reported = True
            events.append(SilenceAfterSpeech(self._ms, self._last_speech - self._speech_start))
            self._decide(events, "machine_end_silence")

    def _check_timeouts(self, events: list) -> None:
        if self.result is not None:
            return
        if self._speech_start is None and not self._tone \
                and self._ms >= self.silence_timeout_ms:
            self._decide(events, "unknown")
        elif self._ms >= self.timeout_ms:
            events.append(Timeout(self._ms))
            self._decide(events, "machine_end_other" if self._machine else "unknown")

    def _decide(self, events: list, answered_by: str, beep_end_ms: int | None = None) -> None:
        if self.result is None:
            self.result = Result(answered_by, self._ms, beep_end_ms)
            events.append(self.result)
