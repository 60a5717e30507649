"""sox transcoding and uploads, on real files made by sox and espeak-ng."""
import os
import subprocess
from pathlib import Path

import pytest

from admin_api.errors import status_for
from tests.integration.conftest_media import (
    assert_native,
    make_speech,
    make_tone,
    media_config,
    require,
    rms,
    soxi_seconds,
    wav_facts,
)
from trunx.media import MediaError, duration, prepare_upload, transcode

__all__ = ["media_config"]  # a fixture, imported for pytest


@pytest.fixture(autouse=True)
def _tools():
    require("sox", "soxi", "espeak-ng")


@pytest.mark.parametrize("ext,rate,channels", [("wav", 44100, 2), ("wav", 8000, 1),
                                               ("mp3", 44100, 2), ("ogg", 48000, 1)])
def test_transcode_to_native_keeps_the_length(tmp_path, ext, rate, channels):
    src = make_tone(tmp_path / f"tone.{ext}", 3.0, rate, channels)
    dst = tmp_path / "out" / "tone.wav"
    assert transcode(src, str(dst)) == str(dst)
    facts = assert_native(dst)
    # independent measures agree with ours, and with the source's own length
    assert abs(duration(str(dst)) - facts["seconds"]) < 0.01
    assert abs(facts["seconds"] - soxi_seconds(dst)) < 0.01
    assert abs(facts["seconds"] - 3.0) < 0.1
    assert rms(dst) > 0.1
    assert oct(os.stat(dst).st_mode & 0o777) == "0o644"
    assert os.listdir(dst.parent) == ["tone.wav"]   # no temp files left behind


def test_type_comes_from_content_not_name(tmp_path):
    src = make_tone(tmp_path / "tone.mp3", 1.0)
    disguised = tmp_path / "tone.wav"
    os.rename(src, disguised)
    transcode(str(disguised), str(tmp_path / "out.wav"))
    assert abs(wav_facts(tmp_path / "out.wav")["seconds"] - 1.0) < 0.1


def test_a_failing_transcode_leaves_no_file(tmp_path):
    good = make_tone(tmp_path / "tone.wav", 1.0)
    with open(good, "rb") as f:
        header = f.read(12)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(header + b"\x13\x37" * 500)   # RIFF/WAVE, then garbage chunks
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.wav").write_bytes(b"previous")
    with pytest.raises(MediaError) as e:
        transcode(str(broken), str(out_dir / "keep.wav"))
    assert e.value.code == "transcode-failed" and status_for(e.value) == 422
    assert e.value.details["stderr"]                 # sox's own words, for the log
    assert os.listdir(out_dir) == ["keep.wav"]
    assert (out_dir / "keep.wav").read_bytes() == b"previous"   # untouched, not half-written


def test_silence_is_trimmed_on_request(tmp_path):
    speech = make_speech(tmp_path / "s.wav", "Hello.")
    padded = tmp_path / "padded.wav"
    subprocess.run(["sox", speech, str(padded), "pad", "1.5", "1.5"], check=True)
    transcode(str(padded), str(tmp_path / "plain.wav"))
    transcode(str(padded), str(tmp_path / "trim.wav"), trim_silence=True)
    plain = wav_facts(tmp_path / "plain.wav")["seconds"]
    trimmed = wav_facts(tmp_path / "trim.wav")["seconds"]
    assert plain - trimmed > 2.5      # most of the 3 s of padding is gone
    assert trimmed > 0.2              # the word is not


def test_pure_silence_trimmed_to_nothing_is_an_error(tmp_path):
    silent = tmp_path / "silent.wav"
    subprocess.run(["sox", "-n", "-r", "8000", str(silent), "trim", "0", "1"], check=True)
    with pytest.raises(MediaError) as e:
        transcode(str(silent), str(tmp_path / "out.wav"), trim_silence=True)
    assert e.value.code == "empty-audio"
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("ext", ["mp3", "wav", "ogg"])
def test_upload_real_files(tmp_path, media_config, ext):
    src = make_speech(tmp_path / f"greeting.{ext}",
                      "Thank you for calling. Please hold while we connect you.")
    data = Path(src).read_bytes()
    rendered = prepare_upload(data, media_config)
    facts = assert_native(rendered.path)
    assert abs(rendered.duration_seconds - facts["seconds"]) < 0.1
    assert abs(rendered.duration_seconds - soxi_seconds(src)) < 0.1
    assert rendered.provider == "upload" and not rendered.cached
    assert rendered.path.startswith(os.path.join(media_config.data_dir, "cache", "uploads"))
    assert rms(rendered.path) > 0.01
    again = prepare_upload(data, media_config)
    assert again.cached and again.path == rendered.path


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02",
    b"Thank you for calling. This is a text file, not audio.\n",
])
def test_upload_refuses_png_and_text(media_config, data):
    with pytest.raises(MediaError) as e:
        prepare_upload(data, media_config)
    assert e.value.code == "unsupported-media-type"
    assert not os.path.exists(os.path.join(media_config.data_dir, "cache"))


def test_upload_oversize_is_refused(tmp_path, media_config):
    src = make_tone(tmp_path / "long.wav", 10.0)       # ~1.7 MB of 44.1 kHz stereo
    data = Path(src).read_bytes()
    small = media_config.replace(upload_max_bytes=len(data) - 1)
    with pytest.raises(MediaError) as e:
        prepare_upload(data, small)
    assert e.value.code == "payload-too-large"
    assert prepare_upload(data, media_config.replace(upload_max_bytes=len(data))).path


def test_upload_that_sox_cannot_decode_leaves_no_file(media_config):
    with pytest.raises(MediaError) as e:
        prepare_upload(b"OggS" + b"\x00" * 4000, media_config)
    assert e.value.code == "transcode-failed"
    uploads = os.path.join(media_config.data_dir, "cache", "uploads")
    assert os.listdir(uploads) == []
