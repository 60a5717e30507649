"""What the AI tests on the real Asterisks share: the fake Ultravox, the engine config that
points at it, the PBX's PJSIP user for Ultravox's outgoing INVITEs, and `trunx` CLI runs.
Modules take the fixtures by assignment (`fake, cfg = ai_support.fake, ai_support.cfg`)."""
from __future__ import annotations

import io
import json

import pytest

from tests.engine_support import make_config
from tests.fakes.fake_ultravox import FakeUltravox
from tests.fakes.ultravox_outgoing import OUTGOING_PASSWORD, OUTGOING_USER
from trunx import cli, db, ultravox_sip

KEY = "uv-test-key"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, fake):
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ultravox_api_key=KEY, ultravox_base_url=fake.base_url,
                      ultravox_end_wait=5.0)
    database = db.connect(cfg)
    yield cfg
    database.close()


def trunx_cli(cfg, tmp_path, *argv) -> dict:
    """`trunx --config <ini> <argv>` for the `ultravox sip` commands; their JSON answer."""
    ini = tmp_path / "trunx.ini"
    ini.write_text(f"[trunx]\ndata_dir = {cfg.data_dir}\nultravox_api_key = {KEY}\n"
                   f"ultravox_base_url = {cfg.ultravox_base_url}\n")
    out = io.StringIO()
    args = cli._parser().parse_args(["--config", str(ini), *argv])
    from trunx import config as trunx_config
    assert ultravox_sip.cli(trunx_config.load(str(ini)), args, out) == 0
    return json.loads(out.getvalue())


@pytest.fixture
def outgoing_user(pbx, tmp_path, fake):
    """The PBX's PJSIP user for Ultravox's INVITEs, as an operator installs it with
    `trunx ultravox sip outgoing` (the carrier holds the same credentials); the settings
    it printed, for the engine's config."""
    etc = pbx.instance_dir_host / "etc"
    done = trunx_cli(make_config(tmp_path, "redis://127.0.0.1:1/0",
                                 ultravox_base_url=fake.base_url), tmp_path,
                     "ultravox", "sip", "outgoing", "--host", f"127.0.0.1:{pbx.sip_port}",
                     "--username", OUTGOING_USER, "--password", OUTGOING_PASSWORD,
                     "--asterisk-etc", str(etc))
    assert done["wrote"] == str(etc / ultravox_sip.OUTGOING_CONF_NAME)
    pbx.cli("module reload res_pjsip.so")
    yield done["config"]
    (etc / ultravox_sip.OUTGOING_CONF_NAME).unlink()
    pbx.cli("module reload res_pjsip.so")
