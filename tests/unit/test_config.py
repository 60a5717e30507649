import pytest

from trunx import config


def test_layers_defaults_file_env_overrides(tmp_path):
    ini = tmp_path / "trunx.ini"
    ini.write_text("[trunx]\nagi_port = 4600\ngather_timeout = 2.5\n"
                   "agi_allow = 127.0.0.1, 10.0.0.5\n")
    cfg = config.load(str(ini), env={"TRUNX_GATHER_TIMEOUT": "3", "ULTRAVOX_API_KEY": "k"},
                      api_port=9000)
    assert (cfg.agi_port, cfg.gather_timeout, cfg.api_port) == (4600, 3.0, 9000)
    assert cfg.agi_allow == ("127.0.0.1", "10.0.0.5")
    assert cfg.ultravox_api_key == "k"
    assert config.load(env={}).agi_port == 4573


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("off", False), ("", False)])
def test_booleans_from_the_environment(raw, value):
    assert config.load(env={"TRUNX_FETCH_ALLOW_PRIVATE": raw}).fetch_allow_private is value


def test_a_bad_boolean_is_an_error():
    with pytest.raises(ValueError, match="not a boolean"):
        config.load(env={"TRUNX_FETCH_ALLOW_PRIVATE": "maybe"})


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        config.load(str(tmp_path / "nope.ini"), env={})


def test_masked_hides_secrets_and_url_passwords():
    cfg = config.load(env={"ELEVENLABS_API_KEY": "sk", "TRUNX_REDIS_URL": "redis://:pw@h/0"})
    shown = cfg.masked()
    assert shown["elevenlabs_api_key"] == "***" and shown["redis_url"] == "redis://:***@h/0"
    assert shown["ultravox_api_key"] == ""   # nothing to hide
