"""Items of the IVR program on the real Asterisk 22:

- what res_agi answers STREAM FILE for a file it does not have versus a channel that hung
  up mid-prompt (the engine tells the two apart with CHANNEL STATUS), and that our dialplan
  only says "engine unreachable" when the engine could not be reached;
- a node naming a sound Asterisk does not have: the call goes on (the gather's keys still
  work), the record says prompt-missing, the PBX's log never says "engine unreachable";
- the seed's bare transfer node reaching the account's default AI agent (fake Ultravox,
  the carrier Asterisk standing in for its SIP side)."""
from __future__ import annotations

import asyncio
import re

import pytest

from devtools.stack.ami import originate_local
from tests.engine_support import make_config, running_engine, seed_account
from tests.fakes.fake_ultravox import FakeUltravox, attach_carrier
from tests.integration.test_harness import FakeEngine
from trunx import db
from trunx.ivr import transfer_target
from trunx.models import Account, Agent, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

DID = "+19495550166"
CALLER = "+12025550177"
AGENT_LINE = "+12025550103"     # carrier: answers, records, runs STEPS_12025550103
KEY = "uv-test-key"


class Log:
    """What the PBX's messages.log gained since this was made (the PBX is shared by the
    session's tests, so its earlier lines are not this test's)."""

    def __init__(self, pbx):
        self.path = pbx.log_path
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")


async def reply(reader) -> str:
    """The next reply line, skipping a HANGUP notice (counted by the caller)."""
    return (await asyncio.wait_for(reader.readline(), 15)).decode().strip()


async def converse(agi, line: str) -> list[str]:
    """Send `line`; the lines Asterisk sends up to and including its reply."""
    agi.writer.write(line.encode() + b"\n")
    await agi.writer.drain()
    seen = []
    while True:
        got = await reply(agi.reader)
        seen.append(got)
        if got != "HANGUP":
            return seen


async def test_res_agi_tells_a_missing_file_from_a_hangup_by_channel_status(pbx, pbx_ami,
                                                                            agi_port):
    log = Log(pbx)

    async def missing_then_close(agi, env):
        out = [await converse(agi, "ANSWER"),
               await converse(agi, 'STREAM FILE "trunx-no-such-sound" ""'),
               await converse(agi, "CHANNEL STATUS")]
        return out       # the socket closes with the channel alive: AGISTATUS=FAILURE

    async with FakeEngine(agi_port, missing_then_close) as engine:
        call = await originate_local(pbx_ami, DID, "w1")
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
    answer, stream, status = engine.results[0]
    assert re.fullmatch(r"200 result=-1 endpos=0", stream[-1]) and "HANGUP" not in stream
    assert status == ["200 result=6"]                 # AST_STATE_UP: the channel lives
    await asyncio.sleep(0)        # (the log is flushed as Asterisk writes it)
    text = log.new()
    assert "engine ended" in text and DID in text
    assert "engine unreachable" not in text

    async def hung_up_mid_prompt(agi, env):
        await converse(agi, "ANSWER")
        stream = await converse(agi, 'STREAM FILE "demo-congrats" ""')
        return stream, await converse(agi, "CHANNEL STATUS")

    async with FakeEngine(agi_port, hung_up_mid_prompt) as engine:
        call = await originate_local(pbx_ami, DID, "w1-h")
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
        async with asyncio.timeout(20):
            while not engine.results and not engine.errors:
                await asyncio.sleep(0.05)
    stream, status = engine.results[0]
    assert re.fullmatch(r"200 result=-1 endpos=\d+", stream[0])
    # after the hangup: HANGUP, and CHANNEL STATUS refused on the dead channel
    assert "HANGUP" in stream + status and status[-1].startswith("511 ")


@pytest.fixture
def cfg(tmp_path, redis_server, pbx):
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      sounds_dir=str(pbx.sounds_dir_host),
                      asterisk_sounds_dir=pbx.sounds_dir_in_root, gather_timeout=3.0)
    database = db.connect(cfg)
    yield cfg
    database.close()


async def record_of(call, timeout: float = 60.0) -> Call:
    async with asyncio.timeout(timeout):
        while True:
            row = Call.get_or_none(Call.uniqueid == call.callee_id,
                                   Call.ended_at.is_null(False))   # the final row
            if row is not None:
                return row
            await asyncio.sleep(0.1)


async def test_a_missing_sound_is_skipped_and_the_call_goes_on(cfg, redis, pbx, pbx_ami):
    tree = {"nodes": {"menu": {"audio": "trunx-no-such-sound", "gather": {"1": "bye"}},
                      "bye": {"action": "hangup", "audio": "beep"}}}
    seed_account(cfg, redis, tree=tree, did=DID, ivr_id="missing")
    log = Log(pbx)
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1", caller_id=f"T <{CALLER}>")
        row = await record_of(call)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
        assert engine.services.stats["prompt_missing"] == 1
        assert engine.server.stats["errors"] == 0
    assert [(p["node"], p["event"]) for p in row.path] == [
        ("menu", "enter"), ("menu", "prompt-missing"), ("menu", "digits"),
        ("bye", "enter"), ("bye", "played"), ("bye", "hangup")]
    assert row.path[1]["file"] == "trunx-no-such-sound"
    assert (row.outcome, row.end_reason) == ("hangup", None)
    assert "engine unreachable" not in log.new()


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


async def test_the_seed_bare_transfer_reaches_the_accounts_default_agent(
        cfg, redis, fake, pbx, carrier, pbx_ami, carrier_ami):
    cfg = cfg.replace(ultravox_api_key=KEY, ultravox_base_url=fake.base_url,
                      ultravox_end_wait=5.0)
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w2-h"})
    account = Account.create(name="bare-transfer")
    remote = fake.add_agent("Sales", systemPrompt="sell")
    agent = Agent.create(account=account, name="Sales", prompt="sell",
                         ultravox_id=remote["agentId"])
    # the seed's tree shape: a menu whose key 1 reaches {"action": "transfer"}, no target
    tree = {"nodes": {"welcome": {"audio": "beep", "gather": {"1": "transfer_ai"}},
                      "transfer_ai": {"action": "transfer"}}}
    seed_account(cfg, redis, tree=tree, did=DID, ivr_id="bare", account=account)
    Account.update(default_transfer=agent.id).where(Account.id == account.id).execute()
    transfer_target.publish(redis, account.id, agent.id)

    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1-w20", caller_id=f"T <{CALLER}>")
        dial_end = await pbx_ami.wait_event(
            lambda e: e.get("Event") == "DialEnd"
            and e.get("DestChannel", "").startswith("PJSIP/carrier-"), timeout=30)
        assert dial_end["DialStatus"] == "ANSWER"
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
        async with asyncio.timeout(30):      # the bridge wrote the row early: the final one
            while (row := await record_of(call)).ended_at is None:
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    (transfer,) = [p for p in row.path if p["event"] == "transfer"]
    assert (transfer["node"], transfer["agent"], transfer["target"]) == \
        ("transfer_ai", agent.id, "account-default")
    assert row.outcome == "transferred"
    assert [(i["user"], i["admitted"]) for i in fake.invites] == \
        [(f"agent_{agent.ultravox_id}", True)]
    assert row.ai_result["status"] == "ended"
    assert row.ai_result["endReason"] == "agent_hangup"
    assert row.ai_result["ultravoxCallId"] == next(iter(fake.calls))
