"""The neural engine against a local server speaking ElevenLabs' documented API."""
import sys

import pytest

from admin_api.errors import status_for
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.integration.conftest_media import assert_native, media_config, soxi_seconds
from trunx.media import MediaError, render_tts
from trunx.media.elevenlabs import ElevenLabs

__all__ = ["media_config"]  # a fixture, imported for pytest

SARAH = "EXAVITQu4vr4xnSDxMaL"


@pytest.fixture
def fake():
    with FakeElevenLabs(api_key="el-test-key") as server:
        yield server


@pytest.fixture
def config(media_config, fake):
    return media_config.replace(elevenlabs_api_key="el-test-key",
                                elevenlabs_base_url=fake.base_url)


def test_neural_render_speaks_the_documented_request(config, fake):
    r = render_tts("Thank you for calling.", SARAH, None, None, config)
    assert (r.provider, r.voice, r.cached) == ("neural", SARAH, False)
    facts = assert_native(r.path)
    assert abs(r.duration_seconds - facts["data_bytes"] / 16000) < 0.1
    assert abs(r.duration_seconds - soxi_seconds(r.path)) < 0.1
    assert r.duration_seconds > 1.0
    [req] = fake.requests
    assert req["method"] == "POST" and req["path"] == f"/v1/text-to-speech/{SARAH}"
    assert req["headers"]["xi-api-key"] == "el-test-key"
    assert req["query"] == {"output_format": ["mp3_44100_128"]}
    assert req["json"] == {"text": "Thank you for calling.",
                           "model_id": "eleven_multilingual_v2"}


def test_cache_hit_makes_no_request(config, fake):
    first = render_tts("Please hold.", SARAH, "neural", None, config)
    second = render_tts("Please hold.", SARAH, "neural", None, config)
    assert second.cached and second.path == first.path
    assert fake.count("POST", "/v1/text-to-speech/") == 1


def test_default_voice_and_settings_are_sent(config, fake):
    settings = {"model_id": "eleven_flash_v2_5",
                "voice_settings": {"stability": 0.4, "similarity_boost": 0.8}}
    r = render_tts("Goodbye.", None, "neural", settings, config)
    assert r.voice == config.elevenlabs_default_voice
    body = fake.requests[-1]["json"]
    assert body["model_id"] == "eleven_flash_v2_5"
    assert body["voice_settings"] == {"stability": 0.4, "similarity_boost": 0.8}


def test_voice_names_resolve_case_insensitively_and_are_cached(config, fake):
    a = render_tts("One.", "rachel", "neural", None, config)
    b = render_tts("Two.", "RACHEL", "neural", None, config)
    c = render_tts("Three.", "front desk", "neural", None, config)
    assert not (a.cached or b.cached or c.cached)
    posts = [r["path"] for r in fake.requests if r["method"] == "POST"]
    assert posts == ["/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM"] * 2 + \
        ["/v1/text-to-speech/custom-voice-7"]
    # each name looked up once: the v2 search, and for Rachel (a legacy premade voice,
    # left out of plain lists) the v1 list with show_legacy
    searches = [r["query"]["search"] for r in fake.requests if r["path"] == "/v2/voices"]
    assert searches == [["rachel"], ["front desk"]]
    (legacy,) = [r for r in fake.requests if r["path"] == "/v1/voices"]
    assert legacy["query"] == {"show_legacy": ["true"]}


def test_the_documented_rachel_example_renders_when_plain_lists_hide_her(config, fake):
    # the seed's example: "voice": "rachel"; the fake's plain lists leave legacy voices out
    plain = [v["name"] for v in fake._search({"search": "rachel"})["voices"]]
    assert plain == []
    r = render_tts("Thanks for calling.", "rachel", "neural", None, config)
    assert r.voice == "rachel" and fake.count("POST", "/v1/text-to-speech/21m00") == 1


def test_a_large_workspace_with_unnamed_voices_is_searched_page_by_page(config, fake):
    fake.voices = ([{"voice_id": f"v{i}", "name": None if i % 7 == 0 else f"Agent {i}",
                     "category": "cloned"} for i in range(600)]
                   + [{"voice_id": "the-agent", "name": "Agent", "category": "cloned"}])
    render_tts("Hello.", "agent", "neural", None, config)
    assert fake.count("POST", "/v1/text-to-speech/the-agent") == 1
    pages = [r["query"] for r in fake.requests if r["path"] == "/v2/voices"]
    assert len(pages) > 1 and "next_page_token" in pages[-1]
    assert fake.count("GET", "/v1/voices") == 0      # never the list that breaks past 500


def test_unknown_voice_name(config, fake):
    with pytest.raises(MediaError) as e:
        render_tts("Hello.", "Nobody Here", "neural", None, config)
    assert e.value.code == "unknown-voice" and status_for(e.value) == 400
    assert e.value.details == {"voice": "Nobody Here"}
    assert fake.count("POST", "/") == 0


def test_unknown_voice_id_reports_the_provider_error(config):
    with pytest.raises(MediaError) as e:
        render_tts("Hello.", "AAAAAAAAAAAAAAAAAAAA", "neural", None, config)
    assert e.value.code == "tts-provider-error"
    assert e.value.details["http_status"] == 404
    assert e.value.details["provider_status"] == "voice_not_found"


def test_bad_key_is_a_provider_error_with_status_and_message(config, fake):
    bad = config.replace(elevenlabs_api_key="wrong")
    with pytest.raises(MediaError) as e:
        render_tts("Hello.", SARAH, "neural", None, bad)
    err = e.value
    assert (err.code, status_for(err)) == ("tts-provider-error", 502)
    assert err.details == {"provider": "elevenlabs", "http_status": 401,
                           "provider_status": "invalid_api_key",
                           "provider_message": "Invalid API key"}
    assert "wrong" not in str((err.code, err.message, err.details))   # the key never leaks
    assert fake.requests[-1]["headers"]["xi-api-key"] == "wrong"


def test_slow_provider_times_out(fake):
    fake.delay = 1.0
    client = ElevenLabs("el-test-key", fake.base_url, timeout=(2.0, 0.3))
    with pytest.raises(MediaError) as e:
        client.synthesize("Hello.", SARAH)
    assert (e.value.code, status_for(e.value)) == ("tts-provider-timeout", 504)


def test_unreachable_provider(media_config):
    from tests.fakes.sshd import free_port
    client = ElevenLabs("k", f"http://127.0.0.1:{free_port()}", timeout=(1.0, 1.0))
    with pytest.raises(MediaError) as e:
        client.synthesize("Hello.", SARAH)
    assert (e.value.code, status_for(e.value)) == ("tts-provider-unavailable", 503)


def test_neural_without_a_key_or_the_local_voice_says_which_setting(media_config,
                                                                    monkeypatch):
    # no key and no `neural` extra (piper hidden from imports); with the extra, Piper speaks
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(MediaError) as e:
        render_tts("Hello.", SARAH, "neural", None, media_config)
    assert e.value.code == "provider-not-configured"
    assert e.value.details["setting"] == "ELEVENLABS_API_KEY"
    assert e.value.details["extra"] == "neural"
