"""espeak-ng TTS through the pipeline: real synthesis, real sox, measured output."""
import os
import time

import pytest

from admin_api.errors import status_for
from tests.integration.conftest_media import (
    assert_native,
    media_config,
    rms,
    soxi_seconds,
)
from trunx.media import MediaError, render_tts, tts

__all__ = ["media_config"]  # a fixture, imported for pytest

TEN_SECONDS = ("Thank you for calling trunx. Your call is important to us. "
               "Please listen carefully, as our menu options have recently changed. "
               "For sales, press one. For support, press two.")


def test_standard_voice_renders_native_audio_of_the_measured_length(media_config):
    started = time.monotonic()
    r = render_tts(TEN_SECONDS, None, "standard", None, media_config)
    elapsed = time.monotonic() - started
    facts = assert_native(r.path)
    # reported duration == the data chunk's length == soxi's reading, within 0.1 s
    assert abs(r.duration_seconds - facts["data_bytes"] / 16000) < 0.1
    assert abs(r.duration_seconds - soxi_seconds(r.path)) < 0.1
    assert 7.0 < r.duration_seconds < 14.0        # a ~10 s prompt, not a truncated one
    assert rms(r.path) > 0.01
    assert (r.provider, r.voice, r.cached) == ("standard", "en-us", False)
    assert r.path == os.path.join(media_config.data_dir, "cache", "tts", r.content_hash + ".wav")
    assert elapsed < 5.0, f"synthesis of a {r.duration_seconds:.1f} s prompt took {elapsed:.2f} s"
    print(f"\n10 s prompt: {r.duration_seconds:.2f} s of audio in {elapsed * 1000:.0f} ms")


def test_cache_hit_performs_no_synthesis(media_config, tmp_path, monkeypatch):
    first = render_tts("Press one for sales.", "en-us", "standard", {"speed": 160},
                       media_config)
    before = os.stat(first.path)
    # With no espeak-ng or sox on PATH, any synthesis or transcode would fail loudly.
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    second = render_tts("Press one for sales.", "EN-US", "standard", {"speed": 160},
                        media_config)
    after = os.stat(second.path)
    assert second.cached and not first.cached
    assert second.path == first.path and second.content_hash == first.content_hash
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second.duration_seconds == first.duration_seconds
    with pytest.raises(MediaError) as e:   # ...and a miss really does need the tools
        render_tts("Press two for support.", "en-us", "standard", None, media_config)
    assert e.value.code == "tool-missing"


def test_different_inputs_render_separately(media_config):
    a = render_tts("Hello.", "en-us", "standard", None, media_config)
    b = render_tts("Hello.", "en-gb", "standard", None, media_config)
    c = render_tts("Hello.", "en-us", "standard", {"speed": 120}, media_config)
    assert len({a.path, b.path, c.path}) == 3
    assert c.duration_seconds > a.duration_seconds     # slower speech is longer


def test_text_that_looks_like_options_is_spoken_not_obeyed(media_config, tmp_path):
    target = tmp_path / "owned.wav"
    r = render_tts(f"-w {target} --voices -v xx", "en-us", "standard", None, media_config)
    assert not target.exists()
    assert r.duration_seconds > 1.0


@pytest.mark.parametrize("voice,code", [("klingon", "unknown-voice"),
                                        ("en-us+nosuchvariant", "unknown-voice"),
                                        ("--help", "invalid-voice")])
def test_unknown_voices_are_refused_clearly(media_config, voice, code):
    with pytest.raises(MediaError) as e:
        render_tts("Hello.", voice, "standard", None, media_config)
    assert e.value.code == code and status_for(e.value) == 400
    assert not os.path.exists(os.path.join(media_config.data_dir, "cache"))


def test_voice_list_and_variants(media_config):
    assert {"en-us", "en-gb", "de", "fr-fr"} <= tts.languages()
    assert tts.check_voice("EN-us+F3") == "en-us+f3"
    assert tts.check_voice("en-us+storm") == "en-us+Storm"   # espeak-ng's file name
    r = render_tts("Hello there.", "en-us+f3", "standard", None, media_config)
    assert r.voice == "en-us+f3" and r.duration_seconds > 0.3


def test_trim_silence_setting(media_config):
    plain = render_tts("One.", "en-us", "standard", None, media_config)
    trimmed = render_tts("One.", "en-us", "standard", {"trim_silence": True}, media_config)
    assert trimmed.path != plain.path
    assert trimmed.duration_seconds < plain.duration_seconds
