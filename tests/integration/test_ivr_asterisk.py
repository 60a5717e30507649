"""The IVR seed's qualify-business tree on a real Asterisk 22: callers on Local channels
press keys with SendDTMF, our dialplan hands the call to the engine over FastAGI, and the
engine walks the tree with real prompts (espeak-ng, transcoded by sox, staged into the
PBX's sounds folder). What each call did is read back from the SQLite record."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from devtools.demo import publish_demo, stage_prompts
from devtools.stack import wait_until
from devtools.stack.ami import originate_local
from tests.engine_support import SEED_DID, SEED_TREE, make_config, running_engine
from tests.store_support import store_on
from trunx import db
from trunx.ivr import store as ivr_store
from trunx.models import Account, AudioAsset, Call, Suppression

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "+12025550199"
# The carrier answers +1NXX555014X and hangs up 2 s later (devtools/stack/dialplan/carrier.conf).
TRANSFER_DIAL = "PJSIP/+12025550140@carrier"


@pytest.fixture
def cfg(tmp_path, redis_server, pbx):
    return make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                       sounds_dir=str(pbx.sounds_dir_host),
                       asterisk_sounds_dir=pbx.sounds_dir_in_root,
                       transfer_dial=TRANSFER_DIAL, gather_timeout=2.0)


@pytest.fixture
def account(cfg, redis):
    """An account with the seed's prompts as staged assets and the tree on the seed DID."""
    db.connect(cfg)
    acc = Account.create(name="asterisk-test")
    stage_prompts(acc, cfg)
    publish_demo(store_on(redis), acc, cfg)
    return acc


async def place_call(pbx_ami, steps: str, number: str = SEED_DID):
    return await originate_local(pbx_ami, number, steps, caller_id=f"Test <{CALLER}>")


async def record_of(call, timeout: float = 60.0) -> Call:
    """The engine's record of the call: the Local ;2 half is the one that ran the AGI."""
    async with asyncio.timeout(timeout):
        while True:
            row = Call.get_or_none(Call.uniqueid == call.callee_id,
                                   Call.ended_at.is_null(False))   # the final row
            if row is not None:
                return row
            await asyncio.sleep(0.1)


def walked(row) -> list[str]:
    return [p["node"] for p in row.path if p["event"] == "enter"]


def played(row, node) -> list[dict]:
    return [p for p in row.path if p["node"] == node and p["event"] in ("prompt", "played")]


async def test_1_then_1_reaches_transfer_ai(cfg, account, pbx_ami, carrier):
    """The transfer crosses the SIP trunk to the carrier, which answers."""
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "w1-d1-w1.5-d1")
        row = await record_of(call)
        assert engine.server.stats["errors"] == 0
    assert walked(row) == ["welcome", "has_business", "transfer_ai"]
    (dialled,) = [p for p in row.path if p["event"] == "transfer"]
    (ended,) = [p for p in row.path if p["event"] == "transfer-ended"]
    assert (dialled["dial"], ended["dial_status"]) == (TRANSFER_DIAL, "ANSWER")
    assert row.outcome == "transferred"


async def test_1_then_2_hears_not_qualified_and_is_hung_up(cfg, account, pbx_ami):
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "w1-d1-w1.5-d2")
        row = await record_of(call)
        hangup = await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
    assert walked(row) == ["welcome", "has_business", "unqualified"]
    assert row.outcome == "hangup"
    (goodbye,) = played(row, "unqualified")
    # Asterisk reports how far it played: all of it, since nothing interrupts a hangup node
    seconds = AudioAsset.get(AudioAsset.name == "not_qualified.wav").duration_seconds
    assert goodbye["endpos"] == pytest.approx(seconds * 8000, rel=0.05)
    assert hangup["Event"] == "Hangup"
    assert engine.server.stats["errors"] == 0


async def test_9_suppresses_the_caller_durably(cfg, account, pbx_ami):
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "w1-d9")
        row = await record_of(call)
        assert engine.server.stats["errors"] == 0
    assert walked(row) == ["welcome", "dnc"] and row.outcome == "suppressed"
    # Another process, opening the same SQLite file cold, sees the entry and its origin.
    probe = (
        "import json,sys; from trunx import config, db; from trunx.models import Suppression;"
        f"db.connect(config.load(env={{}}, data_dir={cfg.data_dir!r}));"
        f"s=Suppression.get(Suppression.number=={CALLER!r});"
        "print(json.dumps([s.account_id, s.source, s.did, s.node, s.call_id]))"
    )
    out = (await asyncio.to_thread(subprocess.run, [sys.executable, "-c", probe],
                                   capture_output=True, text=True, check=True)).stdout
    assert json.loads(out) == [account.id, "ivr", SEED_DID, "dnc", row.id]
    assert Suppression.select().count() == 1


async def test_no_input_replays_welcome_until_max_tries(cfg, account, pbx_ami):
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "")
        row = await record_of(call, timeout=90)
        assert engine.server.stats["errors"] == 0
    assert walked(row) == ["welcome"] * 3
    assert [p["event"] for p in row.path].count("timeout") == 3
    assert row.outcome == "max-tries"
    # each replay was heard through to its end
    full = AudioAsset.get(AudioAsset.name == "welcome.wav").duration_seconds * 8000
    assert all(p["endpos"] == pytest.approx(full, rel=0.05) for p in played(row, "welcome"))


async def test_invalid_digit_replays_the_node(cfg, account, pbx_ami):
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "w1-d5-w1.5-d1-w1.5-d2")
        row = await record_of(call)
        assert engine.server.stats["errors"] == 0
    assert walked(row) == ["welcome", "welcome", "has_business", "unqualified"]
    assert [p for p in row.path if p["event"] == "invalid"][0]["digits"] == "5"


async def test_caller_hanging_up_mid_prompt_leaves_a_completed_record(cfg, account, pbx_ami):
    async with running_engine(cfg) as engine:
        call = await place_call(pbx_ami, "w1-h")
        row = await record_of(call)
        assert engine.server.stats["errors"] == 0
    assert row.status == "completed" and row.outcome == "caller-hangup"
    assert walked(row) == ["welcome"]
    assert 0.5 < row.duration < 5


async def test_publish_during_a_call_leaves_it_on_its_version(cfg, account, pbx_ami, redis):
    changed = json.loads(json.dumps(SEED_TREE))
    changed["nodes"]["unqualified"]["audio"] = "business_check.wav"   # v2 says another thing
    async with running_engine(cfg) as engine:
        first = await place_call(pbx_ami, "w1-d1-w3-d2")
        # wait until the first call is in has_business, then publish v2
        await asyncio.to_thread(wait_until, lambda: "has_business" in pbx_calls_nodes(engine),
                                20)
        ivr_store.save(store_on(redis), account.id, "qualify-business", changed, cfg, create=False)
        second = await place_call(pbx_ami, "w1-d1-w1.5-d2")
        row1, row2 = await record_of(first), await record_of(second)
    assets = {a.name: a.id for a in AudioAsset.select()}
    assert (row1.ivr_version, row2.ivr_version) == (1, 2)
    assert played(row1, "unqualified")[0]["file"].endswith(assets["not_qualified.wav"])
    assert played(row2, "unqualified")[0]["file"].endswith(assets["business_check.wav"])


def pbx_calls_nodes(engine) -> list[str]:
    """Nodes entered by calls the engine is running now (from its live sessions)."""
    return [p["node"] for rec in engine.live_records() for p in rec.path if p["event"] == "enter"]
