"""espeak-ng, the embedded TTS (`engine: standard`): no key, no network.

The text goes in on stdin, never in argv, so a prompt like "-w /etc/passwd" is only read
aloud. The voice does go in argv, so it is checked against espeak-ng's own voice list first.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess

from .errors import BadMedia, ToolFailed, tail

ESPEAK = "espeak-ng"
# lang[+variant], e.g. "en-us", "en-gb-x-rp+f3"; checked before any list lookup so nothing
# odd (a leading "-", a path, spaces) ever reaches the subprocess.
_VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}(\+[A-Za-z0-9][A-Za-z0-9_-]{0,39})?$")
# name -> (lowest, highest) for the espeak-ng options we expose, in espeak-ng's own units
SETTINGS = {"speed": (80, 450), "pitch": (0, 99), "gap": (0, 100), "amplitude": (0, 200)}
_FLAGS = {"speed": "-s", "pitch": "-p", "gap": "-g", "amplitude": "-a"}


def _list(arg: str) -> list[list[str]]:
    try:
        out = subprocess.run([ESPEAK, arg], capture_output=True, timeout=30, check=True).stdout
    except FileNotFoundError as exc:
        raise ToolFailed("tool-missing", "espeak-ng is not installed", {"tool": ESPEAK}) from exc
    rows = [line.split() for line in out.decode("utf-8", "replace").splitlines()[1:]]
    return [r for r in rows if len(r) >= 5]


@functools.lru_cache(maxsize=1)
def languages() -> frozenset[str]:
    """Voice languages espeak-ng can speak here (lower case). mbrola voices are left out:
    they are listed even when the mbrola binary and its databases are not installed."""
    return frozenset(r[1].lower() for r in _list("--voices") if not r[4].startswith("mb/"))


@functools.lru_cache(maxsize=1)
def variants() -> dict[str, str]:
    """lower-case variant name -> the name espeak-ng loads (its file name is case-sensitive)."""
    names = (r[4].rsplit("/", 1)[-1] for r in _list("--voices=variant"))
    return {n.lower(): n for n in names}


def check_voice(voice: str) -> str:
    """The canonical spelling of `voice`, or MediaError invalid-voice / unknown-voice."""
    if not isinstance(voice, str) or not _VOICE_RE.fullmatch(voice):
        raise BadMedia("invalid-voice", "a standard voice looks like 'en-us' or 'en-us+f3'",
                       {"voice": voice if isinstance(voice, str) else repr(voice)})
    lang, _, variant = voice.partition("+")
    if lang.lower() not in languages():
        raise BadMedia("unknown-voice", f"espeak-ng has no voice {lang!r}",
                       {"voice": voice, "see": "espeak-ng --voices"})
    if variant and variant.lower() not in variants():
        raise BadMedia("unknown-voice", f"espeak-ng has no voice variant {variant!r}",
                       {"voice": voice, "see": "espeak-ng --voices=variant"})
    return lang.lower() + ("+" + variants()[variant.lower()] if variant else "")


def check_settings(settings: dict) -> dict:
    out = {}
    for name, value in settings.items():
        if name not in SETTINGS:
            raise BadMedia("invalid-settings", f"unknown standard-engine setting {name!r}",
                           {"setting": name, "allowed": sorted(SETTINGS)})
        lo, hi = SETTINGS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise BadMedia("invalid-settings", f"{name} must be an integer {lo}..{hi}",
                           {"setting": name, "value": value})
        out[name] = value
    return out


def synthesize(text: str, voice: str, dst_wav: str, settings: dict | None = None,
               *, timeout: float = 60.0) -> str:
    """Speak `text` into `dst_wav` (espeak-ng's own 22050 Hz WAV; transcode it afterwards)."""
    voice = check_voice(voice)
    cmd = [ESPEAK, "-b", "1", "-v", voice, "-w", os.path.abspath(dst_wav)]
    for name, value in check_settings(settings or {}).items():
        cmd += [_FLAGS[name], str(value)]
    cmd.append("--stdin")
    try:
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise ToolFailed("tool-missing", "espeak-ng is not installed", {"tool": ESPEAK}) from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed("tts-failed", f"espeak-ng took longer than {timeout:g} s") from exc
    # espeak-ng exits 0 even when it cannot write the file, so look at the file too.
    if proc.returncode != 0 or not os.path.exists(dst_wav) or os.path.getsize(dst_wav) <= 44:
        raise ToolFailed("tts-failed", "espeak-ng produced no audio",
                         {"exit_code": proc.returncode, "stderr": tail(proc.stderr)})
    return dst_wav
