"""The config is checked at load, so a service refuses to start on one it would misread;
the sample deploy/trunx.ini documents every key and loads once its secret is set."""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from trunx import config

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "trunx.ini"


def ini(tmp_path, body: str) -> str:
    path = tmp_path / "trunx.ini"
    path.write_text(body)
    return str(path)


@pytest.mark.parametrize("body,key,why", [
    ("[trunx]\nagi_prot = 4600\n", "agi_prot", "unknown setting"),
    ("[trunx]\n[redis]\nurl = x\n", "[redis]", "unknown section"),
    ("[trunx]\nagi_port = forty\n", "agi_port", "not a whole number"),
    ("[trunx]\nagi_port = 70000\n", "agi_port", "not a port"),
    ("[trunx]\napi_port = -1\n", "api_port", "not a port"),
    ("[trunx]\ngather_timeout = soon\n", "gather_timeout", "not a number"),
    ("[trunx]\ngather_timeout = -1\n", "gather_timeout", "must not be negative"),
    ("[trunx]\nstaging = ftp\n", "staging", "not one of local, sftp"),
    ("[trunx]\nenvironment = prod\n", "environment", "not one of development, production"),
    ("[trunx]\nfetch_allow_private = perhaps\n", "fetch_allow_private", "not a boolean"),
    ("[trunx\n", None, "not an INI file"),
    ("[trunx]\nengine_id = east:1\n", "engine_id", "letters, digits"),
    ("[trunx]\nengine_id = -east\n", "engine_id", "letters, digits"),
])
def test_a_bad_file_is_refused_naming_the_key(tmp_path, body, key, why):
    with pytest.raises(config.ConfigError, match=why) as caught:
        config.load(ini(tmp_path, body), env={})
    if key:
        assert caught.value.key == key and str(caught.value).startswith(f"{key}: ")


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(config.ConfigError) as caught:
        config.load(env={"TRUNX_AMI_PORT": "5038x"})
    assert caught.value.key == "TRUNX_AMI_PORT"


@pytest.mark.parametrize("secret,why", [
    (config.DEV_AMI_SECRET, "development secret"),
    ("", "is not set"),
    ("short", "shorter than 12"),
])
def test_production_refuses_a_weak_or_development_ami_secret(secret, why):
    env = {"TRUNX_ENVIRONMENT": "production", "TRUNX_AMI_SECRET": secret}
    with pytest.raises(config.ConfigError, match=why) as caught:
        config.load(env=env)
    assert caught.value.key == "ami_secret"
    # the same secret is fine in development, the default
    if secret:
        assert config.load(env={"TRUNX_AMI_SECRET": secret}).ami_secret == secret


def test_the_sample_ini_names_every_key_and_loads_with_a_secret():
    text = SAMPLE.read_text()
    keys = re.findall(r"^;?([a-z_]+) =", text, re.M)
    assert sorted(keys) == sorted(f.name for f in fields(config.Config))
    # every key has a comment line right above it, or shares one with the keys before it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^;?[a-z_]+ =", line):
            assert lines[i - 1].startswith(";"), f"no comment above {line!r}"
    with pytest.raises(config.ConfigError, match="ami_secret: is not set"):
        config.load(str(SAMPLE), env={})
    cfg = config.load(str(SAMPLE), env={"TRUNX_AMI_SECRET": "a-real-secret-at-last"})
    assert (cfg.environment, cfg.data_dir) == ("production", "/var/lib/trunx")
    # each commented default is the default in code, so the file tells the truth
    for name, raw in re.findall(r"^;([a-z_]+) = ?(.*)$", text, re.M):
        field = next(f for f in fields(config.Config) if f.name == name)
        assert config._coerce(raw, field.type) == getattr(config.Config(), name), name


def test_the_cli_refuses_a_bad_config_naming_the_key(tmp_path):
    path = ini(tmp_path, "[trunx]\nredis_ulr = redis://x\n")
    done = subprocess.run([sys.executable, "-m", "trunx", "--config", path, "config"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "trunx: config refused: redis_ulr: unknown setting" in done.stderr
