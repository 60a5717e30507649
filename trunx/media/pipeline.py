"""From text or an uploaded blob to a playable, measured 8 kHz WAV in the content cache.

    render_tts(text, voice, provider, settings, config) -> Rendered   (<data_dir>/cache/tts/)
    stream_tts(text, voice, provider, settings, config) -> Iterator[Rendered], one a sentence
    prepare_upload(data, config) -> Rendered                          (<data_dir>/cache/uploads/)

The engines behind `provider`: "standard" is espeak-ng; "neural" is ElevenLabs when its key
is set, else Piper in its own process (the `neural` extra). All name the result by a hash of
everything that shapes the audio, so the same prompt is synthesised once per machine, and a
hit touches neither espeak-ng, Piper, sox nor ElevenLabs.
Concurrent workers may both render a miss; each renames a finished file into place, so a
reader never sees half of one.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import elevenlabs, piper, tts
from .errors import BadMedia, MediaTooLarge, UnsupportedMedia
from .sentences import split_sentences
from .sniff import sniff
from .transcode import duration, transcode

# Bumped when the output format or the transcode recipe changes, so old entries miss.
FORMAT = "wav-8000-mono-s16/1"
MAX_TEXT_CHARS = 5000            # ElevenLabs' per-request limit for multilingual_v2
_ALIASES = {"standard": "standard", "espeak": "standard", "espeak-ng": "standard",
            "neural": "neural", "elevenlabs": "neural"}
_COMMON_SETTINGS = {"trim_silence"}
# backend -> the engine name in the cache key ("neural" stays ElevenLabs' so its entries,
# paid for, still hit)
_HASH_ENGINE = {"standard": "standard", "elevenlabs": "neural", "piper": "neural-piper"}


@dataclass(frozen=True)
class Rendered:
    path: str                  # the 8 kHz mono s16 WAV in the cache (stage it from here)
    duration_seconds: float    # measured from the samples in `path`
    content_hash: str          # sha256 hex of the inputs (tts) or of the bytes (upload)
    provider: str              # "standard" | "neural" | "upload"
    voice: str | None          # as used: espeak-ng spelling, or the ElevenLabs voice given
    cached: bool = False       # True when served from the cache without rendering


def pick_provider(provider: str | None, config, language: str | None = None) -> str:
    """'standard' | 'neural'. None means neural when an ElevenLabs key is set, or when the
    local neural voice is installed and `language` (if given) is English, the one language
    it speaks; else standard. Neural by name with neither is 503 provider-not-configured."""
    if provider is None:
        if config.elevenlabs_api_key:
            return "neural"
        english = language is None or language.lower().startswith("en")
        return "neural" if english and piper.available() else "standard"
    name = _ALIASES.get(provider.lower()) if isinstance(provider, str) else None
    if name is None:
        raise BadMedia("invalid-provider", "engine must be 'standard' or 'neural'",
                       {"provider": provider})
    if name == "neural" and not config.elevenlabs_api_key and not piper.available():
        raise piper.not_installed()
    return name


def backend(provider: str, config) -> str:
    """The engine that speaks for `provider`: 'standard' | 'elevenlabs' | 'piper'."""
    if provider == "standard":
        return "standard"
    return "elevenlabs" if config.elevenlabs_api_key else "piper"


def check_voice(engine: str, voice, config) -> str:
    """The voice as `engine` ('standard' | 'elevenlabs' | 'piper') names it; None means the
    configured default. MediaError invalid-voice / unknown-voice otherwise."""
    if engine == "standard":
        return tts.check_voice(voice or config.default_voice)
    if engine == "piper":
        return piper.check_voice(voice or config.neural_voice)
    voice = voice or config.elevenlabs_default_voice
    if not isinstance(voice, str) or not 0 < len(voice) <= 100:
        raise BadMedia("invalid-voice", "voice must be an ElevenLabs voice id or name",
                       {"voice": repr(voice)})
    return voice


def check_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadMedia("invalid-text", "text must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadMedia("invalid-text", f"text is longer than {MAX_TEXT_CHARS} characters",
                       {"length": len(text), "max": MAX_TEXT_CHARS})
    # Control characters carry no speech and some engines stop at NUL; keep line breaks.
    return "".join(c if c.isprintable() or c in "\n\t" else " " for c in text).strip()


def _check_settings(engine: str, settings: dict | None) -> tuple[bool, dict]:
    settings = dict(settings or {})
    trim = settings.pop("trim_silence", False)
    if not isinstance(trim, bool):
        raise BadMedia("invalid-settings", "trim_silence must be true or false",
                       {"setting": "trim_silence", "value": trim})
    check = {"standard": tts.check_settings, "elevenlabs": elevenlabs.check_settings,
             "piper": piper.check_settings}[engine]
    return trim, check(settings)


def tts_hash(text: str, voice: str, provider: str, settings: dict, trim: bool) -> str:
    key = {"format": FORMAT, "text": text, "voice": voice, "provider": provider,
           "settings": settings, "trim_silence": trim}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _hit(path: str) -> bool:
    """A cache entry there, its access time set to now (its modification time, when it was
    rendered, stays): the purge (trunx/media/cache.py) takes the unused."""
    try:
        os.utime(path, ns=(time.time_ns(), os.stat(path).st_mtime_ns))
    except FileNotFoundError:
        return False
    return True


@functools.lru_cache(maxsize=8)
def _elevenlabs(api_key: str, base_url: str) -> elevenlabs.ElevenLabs:
    # One client per key and URL, so its voice-name cache outlives a single request.
    return elevenlabs.ElevenLabs(api_key, base_url)


def render_tts(text: str, voice: str | None, provider: str | None, settings: dict | None,
               config, *, client: elevenlabs.ElevenLabs | None = None) -> Rendered:
    """Speak `text` once; later calls with the same inputs return the cached file."""
    text = check_text(text)
    provider = pick_provider(provider, config)
    engine = backend(provider, config)
    trim, settings = _check_settings(engine, settings)
    voice = check_voice(engine, voice, config)
    digest = tts_hash(text, voice, _HASH_ENGINE[engine], settings, trim)
    cache_dir = os.path.join(config.data_dir, "cache", "tts")
    path = os.path.join(cache_dir, digest + ".wav")
    if _hit(path):
        return Rendered(path, duration(path), digest, provider, voice, cached=True)
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=cache_dir) as work:
        if engine == "standard":
            src = tts.synthesize(text, voice, os.path.join(work, "espeak.wav"), settings)
            src_type = "wav"
        elif engine == "piper":
            client_ = piper.shared(voice, config.piper_timeout)
            src = client_.synthesize(text, os.path.join(work, "piper.wav"), settings)
            src_type = "wav"
        else:
            client = client or _elevenlabs(config.elevenlabs_api_key, config.elevenlabs_base_url)
            src, src_type = os.path.join(work, "neural.mp3"), "mp3"
            with open(src, "wb") as f:
                f.write(client.synthesize(text, voice, settings))
        transcode(src, path, trim_silence=trim, src_type=src_type)
    return Rendered(path, duration(path), digest, provider, voice)


def stream_tts(text: str, voice: str | None, provider: str | None, settings: dict | None,
               config) -> Iterator[Rendered]:
    """Speak `text` sentence by sentence, the first one first: each piece is rendered,
    transcoded and cached on its own, so playback can start after the first while the rest
    is still being spoken. The same checks and errors as render_tts, raised here, before
    any audio is made."""
    text = check_text(text)
    provider = pick_provider(provider, config)
    engine = backend(provider, config)
    _check_settings(engine, settings)
    voice = check_voice(engine, voice, config)
    return (render_tts(piece, voice, provider, settings, config)
            for piece in split_sentences(text))


def prepare_upload(data: bytes, config, *, trim_silence: bool = False) -> Rendered:
    """Check, transcode and measure an uploaded wav/mp3/ogg; the same bytes convert once."""
    if len(data) > config.upload_max_bytes:
        raise MediaTooLarge("payload-too-large",
                            f"audio uploads are limited to {config.upload_max_bytes} bytes",
                            {"size": len(data), "max_bytes": config.upload_max_bytes})
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMedia("unsupported-media-type", "upload wav, mp3 or ogg audio",
                               {"accepted": ["wav", "mp3", "ogg"]})
    h = hashlib.sha256(f"{FORMAT}\0{trim_silence}\0".encode())
    h.update(data)
    digest = h.hexdigest()
    cache_dir = os.path.join(config.data_dir, "cache", "uploads")
    path = os.path.join(cache_dir, digest + ".wav")
    if _hit(path):
        return Rendered(path, duration(path), digest, "upload", None, cached=True)
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=cache_dir) as work:
        src = os.path.join(work, "upload." + kind)
        with open(src, "wb") as f:
            f.write(data)
        transcode(src, path, trim_silence=trim_silence, src_type=kind)
    return Rendered(path, duration(path), digest, "upload", None)
