"""Fixtures and independent measures for the media tests (import what you use).

The measures here deliberately do not call trunx.media: a WAV is read chunk by chunk from
its bytes, and sources are made and measured with sox/soxi directly.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from trunx.config import Config

TOOLS = ("sox", "soxi", "espeak-ng")


def require(*tools: str) -> None:
    """Missing tools skip on a developer's machine but fail in CI, where .ci installs them."""
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        message = f"not installed: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def wav_facts(path) -> dict:
    """fmt fields and data size, read from the RIFF chunks themselves."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE file"
    facts, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
            facts.update(format_tag=fmt, channels=channels, rate=rate, bits=bits,
                         block_align=align, fmt_size=size)
        elif cid == b"data":
            facts["data_bytes"] = len(body)
        pos += 8 + size + (size & 1)
    facts["seconds"] = facts["data_bytes"] / (facts["rate"] * facts["block_align"])
    return facts


def soxi_seconds(path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], check=True,
                                capture_output=True).stdout)


def rms(path) -> float:
    """RMS amplitude (0..1) as `sox stat` measures it: > 0 means there is sound."""
    err = subprocess.run(["sox", str(path), "-n", "stat"], check=True,
                         capture_output=True).stderr.decode()
    line = next(x for x in err.splitlines() if x.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


def make_tone(path, seconds: float, rate: int = 44100, channels: int = 2) -> str:
    """A sine tone in whatever format `path`'s extension names (wav, mp3, ogg)."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), str(path),
                    "synth", str(seconds), "sine", "440", "vol", "0.5"],
                   check=True, capture_output=True)
    return str(path)


def make_speech(path, text: str) -> str:
    """espeak-ng speech converted by sox to `path`'s format."""
    wav = str(path) + ".src.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", wav, "--stdin"], input=text.encode(),
                   check=True, capture_output=True)
    subprocess.run(["sox", wav, "-r", "44100", str(path)], check=True, capture_output=True)
    os.unlink(wav)
    return str(path)


def assert_native(path) -> dict:
    """Asterisk's format_wav wants exactly this: PCM, 8 kHz, mono, 16 bit."""
    facts = wav_facts(path)
    assert (facts["format_tag"], facts["rate"], facts["channels"], facts["bits"]) == \
        (1, 8000, 1, 16), facts
    return facts


@pytest.fixture
def media_config(tmp_path):
    require(*TOOLS)
    return Config(data_dir=str(tmp_path / "data"), sounds_dir=str(tmp_path / "sounds"))
