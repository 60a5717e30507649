"""The checks that run before any tool or network call: pure, fast, no subprocess."""
import json
import sys

import pytest
import requests

from admin_api.errors import status_for
from trunx.config import Config
from trunx.media import (
    MediaError,
    asterisk_path,
    elevenlabs,
    make_stager,
    pipeline,
    piper,
    prepare_upload,
    staging,
    tts,
)
from trunx.media.errors import MediaTooLarge
from trunx.media.sentences import MAX_PIECE, split_sentences


@pytest.fixture
def config(tmp_path):
    return Config(data_dir=str(tmp_path), upload_max_bytes=1000)


def code_of(exc_info) -> str:
    return exc_info.value.code


def test_error_is_data():
    err = MediaTooLarge("payload-too-large", "too big", {"size": 5})
    assert isinstance(err, MediaError) and status_for(err) == 413
    assert (err.code, err.message, err.details) == ("payload-too-large", "too big", {"size": 5})
    json.dumps(err.details)


@pytest.mark.parametrize("text", ["", "   \n", None, 42, "x" * (pipeline.MAX_TEXT_CHARS + 1)])
def test_bad_text_is_refused(text):
    with pytest.raises(MediaError) as e:
        pipeline.check_text(text)
    assert code_of(e) == "invalid-text"


def test_control_characters_become_spaces():
    assert pipeline.check_text("a\x00b\x1bc\nd\te") == "a b c\nd\te"


def test_provider_choice(config, monkeypatch):
    # with the `neural` extra installed (make install), neural is the default, keyed or not
    assert pipeline.pick_provider(None, config) == "neural"
    assert pipeline.backend("neural", config) == "piper"
    assert pipeline.pick_provider(None, config, "fr-FR") == "standard"   # Piper's voice: en
    assert pipeline.pick_provider("ESPEAK-NG", config) == "standard"
    keyed = config.replace(elevenlabs_api_key="k")
    assert pipeline.pick_provider(None, keyed) == "neural"
    assert pipeline.backend("neural", keyed) == "elevenlabs"
    assert pipeline.pick_provider("standard", keyed) == "standard"
    with pytest.raises(MediaError) as e:
        pipeline.pick_provider("polly", config)
    assert code_of(e) == "invalid-provider"
    # without the extra (piper hidden from imports): standard by default, neural is 503
    monkeypatch.setitem(sys.modules, "piper", None)
    assert pipeline.pick_provider(None, config) == "standard"
    with pytest.raises(MediaError) as e:
        pipeline.pick_provider("neural", config)
    assert code_of(e) == "provider-not-configured" and status_for(e.value) == 503
    assert e.value.details["extra"] == "neural" and "trunx[neural]" in e.value.message
    assert pipeline.pick_provider("neural", keyed) == "neural"


@pytest.mark.parametrize("voice", ["-w/etc/passwd", "en us", "en-us;ls", "../en", "", "en+",
                                   "a" * 41, None, "en-us+f3+m1", "en-us\n"])
def test_voice_charset_is_checked_before_espeak_is_asked(voice):
    with pytest.raises(MediaError) as e:
        tts.check_voice(voice)
    assert code_of(e) == "invalid-voice"


@pytest.mark.parametrize("settings", [{"rate": 100}, {"speed": 10}, {"speed": "fast"},
                                      {"pitch": True}, {"pitch": 100}])
def test_standard_settings(settings):
    with pytest.raises(MediaError) as e:
        tts.check_settings(settings)
    assert code_of(e) == "invalid-settings"
    assert tts.check_settings({"speed": 160, "pitch": 40}) == {"speed": 160, "pitch": 40}


@pytest.mark.parametrize("settings", [{"model": "x"}, {"model_id": "bad id"},
                                      {"voice_settings": {"stability": 2}},
                                      {"voice_settings": {"use_speaker_boost": 1}},
                                      {"voice_settings": {"speed": 3.0}},
                                      {"voice_settings": {"loudness": 0.5}}])
def test_neural_settings(settings):
    with pytest.raises(MediaError) as e:
        elevenlabs.check_settings(settings)
    assert code_of(e) == "invalid-settings"
    good = {"model_id": "eleven_flash_v2_5",
            "voice_settings": {"stability": 0.5, "use_speaker_boost": True}}
    assert elevenlabs.check_settings(good) == good


def test_trim_silence_must_be_a_bool():
    with pytest.raises(MediaError) as e:
        pipeline._check_settings("standard", {"trim_silence": "yes"})
    assert code_of(e) == "invalid-settings"


def test_hash_covers_every_input():
    base = ("hello", "en-us", "standard", {"speed": 160}, False)
    h = pipeline.tts_hash(*base)
    assert h == pipeline.tts_hash("hello", "en-us", "standard", {"speed": 160}, False)
    variants = [("hello!", *base[1:]), (base[0], "en-gb", *base[2:]),
                (*base[:2], "neural", *base[3:]), (*base[:3], {"speed": 161}, False),
                (*base[:4], True)]
    assert len({h, *(pipeline.tts_hash(*v) for v in variants)}) == 6


def test_upload_checks_size_before_anything_else(config):
    with pytest.raises(MediaError) as e:
        prepare_upload(b"RIFF" + b"\x00" * 2000, config)
    assert code_of(e) == "payload-too-large" and status_for(e.value) == 413
    assert e.value.details == {"size": 2004, "max_bytes": 1000}


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b"just some text", b""])
def test_upload_refuses_what_is_not_audio(config, data):
    with pytest.raises(MediaError) as e:
        prepare_upload(data, config)
    assert code_of(e) == "unsupported-media-type" and status_for(e.value) == 415


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "a.wav", "", "x" * 129, "a b",
                                  "a\nb", "ab\n", None])
def test_asset_names_are_plain(config, name):
    with pytest.raises(MediaError) as e:
        asterisk_path(name, config)
    assert code_of(e) == "invalid-asset-id"


def test_asterisk_path(config):
    assert asterisk_path("aud_abc123", config) == f"{config.data_dir}/sounds/aud_abc123"
    chroot = config.replace(asterisk_sounds_dir="/var/lib/asterisk/sounds/trunx/")
    assert asterisk_path("aud_1", chroot) == "/var/lib/asterisk/sounds/trunx/aud_1"


def test_make_stager(config):
    local = make_stager(config)
    assert isinstance(local, staging.LocalStager)
    assert local.host_dir == config.staged_sounds_dir
    sftp = make_stager(config.replace(staging="sftp", sftp_host="pbx", sftp_user="ast",
                                      sftp_key_file="/k", asterisk_sounds_dir="/snd"))
    assert (sftp.host, sftp.port, sftp.remote_dir, sftp.key_file, sftp.password) == \
        ("pbx", 22, "/snd", "/k", None)
    with pytest.raises(ValueError):
        make_stager(config.replace(staging="ftp"))
    with pytest.raises(ValueError):
        make_stager(config.replace(staging="sftp"))


def _response(status, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content, resp.reason = status, body, "Reason"
    return resp


@pytest.mark.parametrize("status,body,provider_status,message", [
    (401, b'{"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}',
     "invalid_api_key", "Invalid API key"),
    (422, b'{"detail": [{"loc": ["body", "text"], "msg": "Field required"}]}',
     None, "Field required"),
    (404, b'{"detail": "Not Found"}', None, "Not Found"),
    (500, b"<html>oops</html>", None, "Reason"),
])
def test_provider_errors_carry_status_and_message(status, body, provider_status, message):
    err = elevenlabs._provider_error(_response(status, body))
    assert err.code == "tts-provider-error" and status_for(err) == 502
    assert err.details["http_status"] == status
    assert err.details["provider_status"] == provider_status
    assert err.details["provider_message"] == message


def test_sentences_come_in_order_and_long_ones_are_cut_at_clauses():
    assert split_sentences("Hello there.  How are you?\nFine!  ") == [
        "Hello there.", "How are you?", "Fine!"]
    assert split_sentences('He said "stop." Then he left (quietly.) Done') == [
        'He said "stop."', "Then he left (quietly.)", "Done"]
    assert split_sentences("3.5 percent, e.g. this") == ["3.5 percent, e.g.", "this"]
    long = ", ".join(["one two three four five six"] * 20) + "."
    pieces = split_sentences(long)
    assert len(pieces) > 1 and all(len(p) <= MAX_PIECE for p in pieces)
    assert " ".join(pieces) == long
    assert split_sentences("   ") == []


@pytest.mark.parametrize("voice", ["rachel", "en-us", "", None, "../en_US-joe-medium"])
def test_local_neural_voice_is_checked(voice):
    with pytest.raises(MediaError) as e:
        piper.check_voice(voice)
    assert code_of(e) == "unknown-voice"
    assert piper.check_voice("joe") == piper.check_voice("en_US-joe-medium") == "en_US-joe-medium"


@pytest.mark.parametrize("settings", [{"speed": 1}, {"length_scale": 3}, {"volume": True},
                                      {"noise_scale": "x"}])
def test_local_neural_settings(settings):
    with pytest.raises(MediaError) as e:
        piper.check_settings(settings)
    assert code_of(e) == "invalid-settings"
    assert piper.check_settings({"length_scale": 1}) == {"length_scale": 1.0}
