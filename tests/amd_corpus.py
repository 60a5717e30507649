"""A labelled corpus of call answers for the answering-machine detector, made here.

Speech is spoken by espeak-ng (several voices) and Piper (when the `neural` extra is
installed), resampled by sox to 8 kHz; tones, fax CNG and line noise are made by sox too.
Each answer is 8 kHz signed-linear 16-bit mono with its label:

    kind        "human" | "machine" | "fax" | "silence"
    expected    the Twilio answeredBy the detector should give in DetectMessageEnd mode
    beep_end_ms where the beep ends (machine answers ending in a beep), else None

build(folder) writes nothing it cannot rebuild; speech clips are cached in `folder` by text
and voice, so a second build in the same folder is quick.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

RATE = 8000


@dataclass(frozen=True)
class Answer:
    name: str
    kind: str
    expected: str
    pcm: np.ndarray               # int16 at 8 kHz
    beep_end_ms: int | None = None
    beep_hz: int | None = None
    greeting_s: float = 0.0       # machine answers: the greeting's length before any beep

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE


def _sox_synth(effects: list[str]) -> np.ndarray:
    out = subprocess.run(["sox", "-R", "-n", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
                          "-e", "signed-integer", "-", "synth", *effects],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, "<i2").astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), np.int16)


def tone(hz: float, ms: int, level: float = 0.3) -> np.ndarray:
    return _sox_synth([f"{ms / 1000:.3f}", "sine", str(hz), "vol", str(level)])[
        :RATE * ms // 1000]


def noise(seconds: float, level: float, color: str = "pinknoise") -> np.ndarray:
    return _sox_synth([f"{seconds:.3f}", color, "vol", str(level)])


PIPER_FIXED = {"noise_scale": 0.0, "noise_w_scale": 0.0}


class Voices:
    """Speech clips by (voice, text), cached as 8 kHz WAVs in `folder`."""

    def __init__(self, folder: str, piper_client=None):
        self.folder = folder
        self.piper = piper_client
        os.makedirs(folder, exist_ok=True)

    def say(self, text: str, voice: str, level_dbfs: float = -20.0) -> np.ndarray:
        key = hashlib.sha256(f"{voice}\0{text}\0{level_dbfs}".encode()).hexdigest()[:24]
        path = os.path.join(self.folder, key + ".wav")
        if not os.path.exists(path):
            src = os.path.join(self.folder, key + ".src.wav")
            if voice == "piper":
                # no sampling noise: the same clip every run, so the corpus (and what the
                # detector makes of it) is the same every run
                self.piper.synthesize(text, src, PIPER_FIXED)
            else:
                subprocess.run(["espeak-ng", "-v", voice, "-w", src, "--stdin"],
                               input=text.encode(), check=True, capture_output=True)
            # trim lead-in and tail silence so labels are exact; normalise the level
            subprocess.run(["sox", "-R", src, "-r", str(RATE), "-c", "1", "-b", "16", path,
                            "silence", "1", "0.02", "1%", "reverse", "silence", "1", "0.02",
                            "1%", "reverse", "norm", str(level_dbfs + 10)],
                           check=True, capture_output=True)
            os.unlink(src)
        with wave.open(path) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def mix(signal: np.ndarray, extra: np.ndarray) -> np.ndarray:
    extra = np.resize(extra, len(signal))
    return np.clip(signal.astype(np.int32) + extra, -32768, 32767).astype(np.int16)


HUMAN_LINES = ["Hello?", "Yes, this is John.", "Hello, this is Maria.", "Hi, Sarah speaking.",
               "Hello, who is calling?", "Yeah?", "Good morning, Mike here.", "Hello, yes?"]
MORE = ["Hello? Is anyone there?", "Sorry, who is this?", "Can you hear me?"]
GREETING_SENTENCES = [
    "Hi, you have reached the voicemail of John Smith.",
    "I am not available to take your call right now.",
    "Please leave your name, your number and a short message after the tone.",
    "I will get back to you as soon as I can.",
    "If this is urgent, please call my office line instead.",
    "Our office hours are Monday through Friday, nine to five.",
    "You can also reach us by email at any time.",
    "Thank you for calling, and have a great day.",
]
ESPEAK_VOICES = ["en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb-x-rp+f2", "en-029"]
BEEPS = [(400, 120), (440, 1000), (600, 250), (800, 500), (1000, 200), (1100, 300),
         (1400, 150), (1800, 400), (2200, 600), (950, 120), (1250, 800), (2000, 180),
         (500, 350), (1600, 220)]


def build(folder: str, piper_client=None) -> list[Answer]:
    """At least 40 labelled answers; deterministic for a given set of voices."""
    voices = Voices(folder, piper_client)
    speakers = ESPEAK_VOICES + (["piper"] if piper_client is not None else [])
    rng = np.random.default_rng(11)
    answers: list[Answer] = []

    def line_noise(n: int, on: bool) -> np.ndarray:
        return noise(n / RATE + 0.1, 0.02, "pinknoise")[:n] if on else np.zeros(n, np.int16)

    # people: a short greeting, then silence or, after a pause, more speech
    for i in range(18):
        voice = speakers[i % len(speakers)]
        parts = [silence(rng.uniform(0.2, 1.2)),
                 voices.say(HUMAN_LINES[i % len(HUMAN_LINES)], voice)]
        if i % 3 == 2:
            parts += [silence(rng.uniform(1.6, 2.4)), voices.say(MORE[i % len(MORE)], voice),
                      silence(3.0)]
        else:
            parts.append(silence(4.0))
        pcm = np.concatenate(parts)
        noisy = i % 4 == 1
        answers.append(Answer(f"human-{i:02d}-{voice}{'-noise' if noisy else ''}", "human",
                              "human", mix(pcm, line_noise(len(pcm), noisy))))

    # voicemail greetings: 3-20 s, several voices, beeps of many kinds, or silence
    for i in range(22):
        voice = speakers[(i * 5 + 1) % len(speakers)]
        count = 1 + i % 6
        start = i % len(GREETING_SENTENCES)
        text = " ".join((GREETING_SENTENCES * 2)[start:start + count])
        greeting = voices.say(text, voice)
        while len(greeting) < 3 * RATE:       # a greeting is 3 s at least
            greeting = np.concatenate([greeting, silence(0.3), voices.say(text, voice)])
        greeting = greeting[:20 * RATE]
        lead = silence(rng.uniform(0.1, 0.8))
        noisy = i % 5 == 3
        if i % 7 == 6:
            parts = [lead, greeting, silence(5.0)]
            pcm = np.concatenate(parts)
            answers.append(Answer(f"machine-{i:02d}-{voice}-no-beep", "machine",
                                  "machine_end_silence",
                                  mix(pcm, line_noise(len(pcm), noisy)),
                                  greeting_s=len(greeting) / RATE))
            continue
        hz, ms = BEEPS[i % len(BEEPS)]
        gap = silence(rng.uniform(0.2, 0.9))
        before = np.concatenate([lead, greeting, gap])
        beep = tone(hz, ms, level=float(rng.uniform(0.15, 0.5)))
        pcm = np.concatenate([before, beep, silence(3.0)])
        end_ms = int(round((len(before) + len(beep)) * 1000 / RATE))
        answers.append(Answer(f"machine-{i:02d}-{voice}-beep-{hz}hz-{ms}ms"
                              f"{'-noise' if noisy else ''}", "machine", "machine_end_beep",
                              mix(pcm, line_noise(len(pcm), noisy)), end_ms, hz,
                              greeting_s=len(greeting) / RATE))

    # a fax machine's CNG: 1,100 Hz, 0.5 s on, 3 s off; and one with line noise
    cng = np.concatenate([silence(0.5)] + [np.concatenate([tone(1100, 500), silence(3.0)])
                                          for _ in range(3)])
    answers.append(Answer("fax-cng", "fax", "fax", cng))
    answers.append(Answer("fax-cng-noise", "fax", "fax", mix(cng, line_noise(len(cng), True))))
    # dead air: digital silence, and an open line with only noise on it
    answers.append(Answer("dead-air", "silence", "unknown", silence(8.0)))
    dead = silence(8.0)
    answers.append(Answer("dead-air-noise", "silence", "unknown",
                          mix(dead, line_noise(len(dead), True))))
    return answers


def build_with_available_voices(folder: str) -> list[Answer]:
    """build() with Piper's voice too when the `neural` extra is installed."""
    import shutil

    from trunx.media import piper

    missing = [t for t in ("sox", "espeak-ng") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"the AMD corpus needs: {', '.join(missing)}")
    client = piper.Piper() if piper.available() else None
    try:
        return build(folder, client)
    finally:
        if client is not None:
            client.close()
