"""From the admin API to a real call: an IVR created, voiced and assigned over HTTP is what
a caller on the real Asterisk hears. Asterisk reports the playback of the API-generated
prompt with its end position, which must match the prompt's length."""
from __future__ import annotations

import asyncio
import copy

import pytest

from admin_api import create_app
from devtools.demo import DEMO_DID, SEED_TREE
from devtools.stack.ami import originate_local
from tests.engine_support import make_config, running_engine
from trunx import accounts, db
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

WELCOME = "Thank you for calling. Press 1 if you are a business owner."


@pytest.fixture
def cfg(tmp_path, redis_server, pbx):
    return make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                       sounds_dir=str(pbx.sounds_dir_host),
                       asterisk_sounds_dir=pbx.sounds_dir_in_root, gather_timeout=1.0,
                       gather_max_tries=1)


async def test_audio_generated_by_the_api_is_heard_on_a_call(cfg, pbx, pbx_ami, redis):
    db.connect(cfg)
    key = accounts.create_key(accounts.create_account("e2e"))
    client = create_app(cfg, redis=redis).test_client()
    auth = {"Authorization": f"Bearer {key}"}

    tree = copy.deepcopy(SEED_TREE)
    assert client.post("/ivr", json={"id": "qualify-business", **tree},
                       headers=auth).status_code == 201
    made = client.post("/ivr/qualify-business/audio", headers=auth, json={
        "node": "welcome", "text": WELCOME, "voice": "rachel"})
    assert made.status_code == 201, made.get_json()
    asset = made.get_json()["audio"]
    assert client.post("/api/dids", json={"number": DEMO_DID}, headers=auth).status_code == 201
    assigned = client.post("/ivr/qualify-business/assign", json={"did": DEMO_DID}, headers=auth)
    assert assigned.get_json()["assigned"] is True

    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DEMO_DID, "", caller_id="E2E <+12025550142>")
        async with asyncio.timeout(60):
            while (row := Call.get_or_none(Call.uniqueid == call.callee_id,
                                               Call.ended_at.is_null(False))) is None:
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0

    (prompt,) = [p for p in row.path if p["event"] == "prompt"]
    assert prompt["file"] == f"{pbx.sounds_dir_in_root}/{asset['id']}"
    # Asterisk played it to the end: endpos in 8 kHz samples equals the measured length
    assert prompt["endpos"] > 0
    assert prompt["endpos"] / 8000 == pytest.approx(asset["durationSeconds"], abs=0.1)
    assert row.ivr_version == 2       # v1 from POST /ivr, v2 once the node got its audio
