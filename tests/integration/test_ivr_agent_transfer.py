"""An IVR transfer node that names an AI agent: the caller is bridged to the agent by an
INVITE to its SIP user (Ultravox's SIP guide; the local fake takes the INVITE as made),
and the call's record carries the agent's transcript. A scripted FastAGI peer plays
Asterisk; Redis and SQLite are real."""
from __future__ import annotations

import pytest

from bench.agi_emulator import Scenario, run_session
from tests.engine_support import make_config, running_engine, seed_account
from tests.fakes.fake_ultravox import FakeUltravox
from tests.store_support import store_on
from trunx import db
from trunx.ivr import store as ivr_store
from trunx.models import Account, Agent, Call

KEY = "uv-test-key"
DID = "+19495550177"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        server.emulate_invites = True
        yield server


def tree(agent_id: str) -> dict:
    return {"nodes": {"menu": {"audio": "menu", "gather": {"1": "sales", "2": "bye"}},
                      "sales": {"action": "transfer", "agent": agent_id},
                      "bye": {"action": "hangup"}}}


def agent_for(account, fake) -> Agent:
    remote = fake.add_agent("Sales", systemPrompt="sell")
    return Agent.create(account=account, name="Sales", prompt="sell",
                        ultravox_id=remote["agentId"])


async def test_the_caller_meets_the_agent(tmp_path, redis_server, redis, fake):
    cfg = make_config(tmp_path, redis_server.url, ultravox_api_key=KEY,
                      ultravox_base_url=fake.base_url, ultravox_end_wait=3.0)
    db.connect(cfg)
    account = Account.create(name="ivr-agent")
    agent = agent_for(account, fake)
    seed_account(cfg, redis, tree=tree(agent.id), did=DID, ivr_id="sales", account=account)
    async with running_engine(cfg) as engine:
        res = await run_session("127.0.0.1", engine.server.port,
                                Scenario(did=DID, keys=["1"], caller="+12025550188"))
        assert res.error is None and engine.server.stats["errors"] == 0
    domain = fake.sip["domain"]
    assert f'EXEC Dial "PJSIP/carrier/sip:agent_{agent.ultravox_id}@{domain},30,m"' \
        in res.commands
    row = Call.get(Call.to_number == DID)
    assert row.outcome == "transferred" and row.status == "completed"
    assert row.ai_result["status"] == "ended" and row.ai_result["transcript"]
    (uv_id,) = fake.calls
    assert row.ai_result["ultravoxCallId"] == uv_id
    ended = [p for p in row.path if p["event"] == "transfer-ended"]
    assert ended[0]["ai_status"] == "ended"


async def test_without_ultravox_the_transfer_fails_politely(tmp_path, redis_server, redis,
                                                            fake):
    cfg = make_config(tmp_path, redis_server.url)
    db.connect(cfg)
    account = Account.create(name="no-uv")
    agent = agent_for(account, fake)
    seed_account(cfg, redis, tree=tree(agent.id), did=DID, ivr_id="sales", account=account)
    async with running_engine(cfg) as engine:
        res = await run_session("127.0.0.1", engine.server.port, Scenario(did=DID, keys=["1"]))
    row = Call.get(Call.to_number == DID)
    assert (row.outcome, row.end_reason) == ("transfer-failed", "ultravox-not-configured")
    assert res.commands[-2:] == ['STREAM FILE "ss-noservice" ""', "HANGUP"]
    assert fake.count("GET") == 0


def test_a_tree_naming_another_accounts_agent_is_refused(tmp_path, redis, fake):
    cfg = make_config(tmp_path, "redis://127.0.0.1:1/0")
    db.connect(cfg)
    mine, theirs = Account.create(name="mine"), Account.create(name="theirs")
    agent = agent_for(theirs, fake)
    with pytest.raises(ivr_store.InvalidTree) as excinfo:
        ivr_store.save(store_on(redis), mine.id, "sales", tree(agent.id), cfg, create=True)
    assert [(p.field, p.code) for p in excinfo.value.problems] == \
        [("nodes.sales.agent", "unknown-agent")]
