"""The local neural voice through the pipeline: real Piper in its worker, real sox."""
import time

import pytest

from tests.integration.conftest_media import assert_native, media_config, rms
from trunx.media import MediaError, piper, render_tts, stream_tts

__all__ = ["media_config"]  # a fixture, imported for pytest

# 200 characters, four sentences: what a live speak might say
TEXT_200 = ("Thank you for calling Acme Dental. We are open Monday through Friday from nine "
            "to five. Please stay on the line and the next available member of our dental team "
            "will be with you very shortly. Goodbye.")


def test_sentences_stream_first_and_the_first_audio_is_under_a_second(media_config):
    assert len(TEXT_200) == 200
    piper.shared(media_config.neural_voice, media_config.piper_timeout).warm()
    started = time.monotonic()
    pieces = stream_tts(TEXT_200, None, "neural", None, media_config)
    first = next(pieces)
    first_audio = time.monotonic() - started
    rest = list(pieces)
    total = time.monotonic() - started
    assert first_audio < 1.0, f"first audio after {first_audio:.2f} s"
    assert [p.provider for p in (first, *rest)] == ["neural"] * 4
    for piece in (first, *rest):
        assert_native(piece.path)
        assert piece.duration_seconds > 0.4 and rms(piece.path) > 0.01
    print(f"\n200 chars: first audio {first_audio * 1000:.0f} ms "
          f"({first.duration_seconds:.2f} s of it), all {total * 1000:.0f} ms")
    # each sentence is cached on its own: the same text again renders nothing
    again = list(stream_tts(TEXT_200, None, "neural", None, media_config))
    assert all(p.cached for p in again)
    assert [p.path for p in again] == [p.path for p in (first, *rest)]


def test_voice_settings_are_in_the_cache_key(media_config):
    plain = render_tts("Press one for sales.", None, "neural", None, media_config)
    slow = render_tts("Press one for sales.", None, "neural", {"length_scale": 1.6},
                      media_config)
    assert plain.content_hash != slow.content_hash
    assert slow.duration_seconds > plain.duration_seconds * 1.3
    assert render_tts("Press one for sales.", "joe", "neural", None, media_config).cached
    with pytest.raises(MediaError) as e:
        list(stream_tts("Hello.", None, "neural", {"speed": 2}, media_config))
    assert e.value.code == "invalid-settings"


def test_a_stuck_worker_times_out_and_the_next_request_gets_a_fresh_one():
    client = piper.Piper(timeout=0.05)        # too short for the voice to load
    try:
        with pytest.raises(MediaError) as e:
            list(client.stream("Hello."))
        assert e.value.code == "tts-failed" and client.pid is None
        client.timeout = 30.0
        (sentence,) = client.stream("Hello.")
        assert sentence.sample_rate == 22050 and sentence.seconds > 0.3
    finally:
        client.close()


def test_an_abandoned_stream_leaves_the_worker_ready(tmp_path):
    client = piper.Piper()
    try:
        pieces = client.stream("One. Two. Three. Four.")
        assert next(pieces).text == "One."
        pid = client.pid
        pieces.close()                          # the caller stopped listening
        assert [s.text for s in client.stream("Five. Six.")] == ["Five.", "Six."]
        assert client.pid == pid
        out = client.synthesize("Seven.", str(tmp_path / "seven.wav"))
        assert rms(out) > 0.01
    finally:
        client.close()
