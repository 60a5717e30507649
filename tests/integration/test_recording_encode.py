"""A MixMonitor WAV becomes the recording the API serves: mp3 or wav at 8 kHz, silence
trimmed when asked, the duration measured from the samples, a header Asterisk never
finished read to the end of the file."""
from __future__ import annotations

import subprocess
import wave

import pytest

from trunx.media.transcode import encode_recording


@pytest.fixture
def raw(tmp_path):
    """1 s of silence, 2 s of tone, 1.5 s of silence: what a quiet caller's call sounds like."""
    path = tmp_path / "raw.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth", "2",
                    "sine", "440", "vol", "0.5", "pad", "1", "1.5"], check=True)
    return path


def soxi_seconds(path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True,
                                check=True).stdout)


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_formats_and_trimming(raw, tmp_path, fmt):
    whole = encode_recording(str(raw), str(tmp_path / f"whole.{fmt}"), fmt)
    trimmed = encode_recording(str(raw), str(tmp_path / f"trim.{fmt}"), fmt, trim_silence=True)
    assert whole == pytest.approx(4.5, abs=0.01)
    assert trimmed == pytest.approx(2.0, abs=0.1)
    # an mp3 pads its last frame: the file may run a little longer than the audio
    assert soxi_seconds(tmp_path / f"trim.{fmt}") == pytest.approx(trimmed, abs=0.25)
    head = (tmp_path / f"whole.{fmt}").read_bytes()[:4]
    assert head == b"RIFF" if fmt == "wav" else head[:3] == b"ID3" or head[0] == 0xFF


def test_an_unfinished_header_and_a_silent_call(raw, tmp_path):
    blob = bytearray(raw.read_bytes())
    blob[4:8] = blob[40:44] = b"\0\0\0\0"            # as format_wav leaves it before close
    (tmp_path / "open.wav").write_bytes(bytes(blob))
    assert encode_recording(str(tmp_path / "open.wav"), str(tmp_path / "o.wav"),
                            "wav") == pytest.approx(4.5, abs=0.01)
    silent = tmp_path / "silent.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(silent), "trim", "0",
                    "3"], check=True)
    # nothing to trim to: kept whole rather than emptied
    assert encode_recording(str(silent), str(tmp_path / "s.mp3"), "mp3",
                            trim_silence=True) == pytest.approx(3.0, abs=0.01)
    with wave.open(str(silent)) as w:
        assert w.getnframes() == 24000
    (tmp_path / "empty.wav").write_bytes(bytes(blob[:44]))
    assert encode_recording(str(tmp_path / "empty.wav"), str(tmp_path / "e.mp3"), "mp3") == 0.0
