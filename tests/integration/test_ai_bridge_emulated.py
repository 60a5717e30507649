"""agi_server.ai.bridge.run_ai_call through a real FastAGI session (bench.agi_emulator plays
Asterisk) against the local Ultravox fake, with a real SQLite file. The same bridge on the
two real Asterisks is in test_ai_bridge_asterisk.py."""
from __future__ import annotations

import pytest

from agi_server.agi.server import FastAGIServer
from agi_server.ai import bridge as ai_bridge
from bench.agi_emulator import Scenario, run_session
from tests.engine_support import make_config
from tests.fakes.fake_ultravox import FakeUltravox
from trunx import calls, db
from trunx.models import Account, Agent, Call

KEY = "uv-test-key"
DOMAIN = "acct-0000.sip.ultravox.invalid"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        server.emulate_invites = True     # no Asterisk here: the INVITE is taken as made
        yield server


@pytest.fixture
def cfg(tmp_path, fake):
    cfg = make_config(tmp_path, "redis://127.0.0.1:1/0", ultravox_api_key=KEY,
                      ultravox_base_url=fake.base_url, ultravox_end_wait=3.0)
    database = db.connect(cfg)
    yield cfg
    database.close()


@pytest.fixture
def account(cfg):
    return Account.create(name="ai")


def ai_call(account, **kw) -> Call:
    fields = dict(account=account, direction="outbound", from_number="+14155559876",
                  to_number="+14155551234", status="answered", provider="ultravox",
                  call_sid="CA" + "0" * 32,
                  ai={"systemPrompt": "Confirm the appointment.", "voice": "Mark"},
                  max_duration=300.0, metadata={"crm": "42"})
    return Call.create(**{**fields, **kw})


def row_dict(row: Call) -> dict:
    # what agi_server.ami.tracker hands the bridge
    return {"id": row.id, "call_sid": row.call_sid, "account": row.account_id,
            "from_number": row.from_number, "to_number": row.to_number,
            "status": row.status, "ai": row.ai, "agent_id": row.agent_id,
            "max_duration": row.max_duration, "metadata": row.metadata}


async def bridge(cfg, row: Call, **scenario):
    async def route(ch):
        await ai_bridge.run_ai_call(ch, row_dict(row), cfg)

    server = FastAGIServer(cfg, {"outbound": route})
    await server.start()
    try:
        result = await run_session("127.0.0.1", server.port,
                                   Scenario(script="outbound", **scenario))
    finally:
        await server.stop()
    assert result.error is None and server.stats["errors"] == 0
    return result, Call.get_by_id(row.id)


def the_dial(agent_id: str, endpoint: str = "carrier", options: str = "mS(300)") -> str:
    return f'EXEC Dial "PJSIP/{endpoint}/sip:agent_{agent_id}@{DOMAIN},30,{options}"'


async def test_a_plain_call_reaches_the_agent_trunx_manages_for_its_prompt(cfg, account,
                                                                           fake):
    result, row = await bridge(cfg, ai_call(account))
    (agent,) = fake.agents.values()
    template = agent["callTemplate"]
    assert template["systemPrompt"] == "Confirm the appointment." and template["voice"] == "Mark"
    assert template["firstSpeakerSettings"] == {"agent": {}}
    assert template["maxDuration"] == "300s"
    assert agent["name"].startswith("trunx-call-")
    # hold music while Ultravox is asked; where an agent's transfer (a REFER) sends the
    # caller; then the INVITE to agent_<id>@<domain>; after it, whether a REFER moved the
    # caller (the channel's context: not the transfer's here)
    assert result.commands == [
        'EXEC StartMusicOnHold',
        'SET VARIABLE "__TRANSFER_CONTEXT" "trunx-ai-transfer"',
        f'SET VARIABLE "__TRUNX_AI_CALL" "{row.id}"',
        f'SET VARIABLE "__TRUNX_ACCOUNT" "{account.id}"',
        'EXEC StopMusicOnHold', the_dial(agent["agentId"]), 'GET VARIABLE "DIALSTATUS"',
        'GET VARIABLE "CONTEXT"']
    assert fake.count("GET", "/api/sip") == 1
    assert fake.count("POST", "/api/calls") == 0          # no call is created over HTTP
    (uv_id,) = fake.calls
    assert fake.calls[uv_id]["agentId"] == agent["agentId"]
    assert row.ai_result == {
        "status": "ended", "endReason": "hangup", "duration": 12, "ultravoxCallId": uv_id,
        "transcript": "Agent: Hi, this is Sarah from Downtown Dental.\n"
                      "User: Yes, this is John."}
    # what GET /api/voice/{id} shows, as the seed has it
    assert calls.call_json(row)["ai"] == {
        "status": "ended", "transcript": row.ai_result["transcript"], "duration": 12,
        "endReason": "hangup"}


async def test_the_same_prompt_reuses_its_managed_agent(cfg, account, fake):
    await bridge(cfg, ai_call(account))
    await bridge(cfg, ai_call(account, call_sid="CA" + "1" * 32))
    assert len(fake.agents) == 1 and fake.count("POST", "/api/agents") <= 1
    assert len(fake.calls) == 2
    rows = Call.select().where(Call.account == account)
    assert len({r.ai_result["ultravoxCallId"] for r in rows}) == 2


async def test_an_agent_call_goes_through_the_ultravox_agent(cfg, account, fake):
    remote = fake.add_agent("Confirmer", systemPrompt="p", voice="Mark")
    agent = Agent.create(account=account, name="Confirmer", prompt="p", voice="Mark",
                         max_duration=120, ultravox_id=remote["agentId"])
    row = ai_call(account, agent_id=agent.id, max_duration=120.0,
                  ai={"systemPrompt": "p", "ultravoxAgentId": remote["agentId"]})
    fake.script["endReason"] = "agent_hangup"
    result, row = await bridge(cfg, row)
    assert the_dial(remote["agentId"], options="mS(120)") in result.commands
    assert fake.count("POST") == 0
    assert row.ai_result["status"] == "ended" and row.ai_result["endReason"] == "agent_hangup"


async def test_an_unparsable_stored_max_duration_is_no_error(cfg, account, fake):
    result, row = await bridge(cfg, ai_call(account, max_duration=None,
                                            ai={"systemPrompt": "x", "maxDuration": "soon"}))
    (agent,) = fake.agents.values()
    assert "maxDuration" not in agent["callTemplate"]
    assert the_dial(agent["agentId"], options="m") in result.commands
    assert row.ai_result["status"] == "ended"


async def test_waits_for_ultravox_to_report_the_end(cfg, account, fake):
    fake.script["ended_after_polls"] = 2
    _, row = await bridge(cfg, ai_call(account))
    assert row.ai_result["status"] == "ended" and row.ai_result["endReason"] == "hangup"
    (uv_id,) = fake.calls
    assert fake.count("GET", f"/api/calls/{uv_id}") >= 3


async def test_sip_leg_not_answered(cfg, account, fake):
    _, row = await bridge(cfg, ai_call(account), dial_status="CONGESTION")
    assert row.ai_result["status"] == "failed"
    assert row.ai_result["endReason"] == "dial-congestion"


async def test_callee_hangs_up_during_the_dial_results_are_still_collected(cfg, account):
    result, row = await bridge(cfg, ai_call(account), hangup_after=2)
    assert any(c.startswith('EXEC Dial "PJSIP/carrier/sip:agent_') for c in result.commands)
    assert row.ai_result["status"] == "ended" and row.ai_result["transcript"]


@pytest.mark.parametrize("status", [500, 401, 400])
async def test_ultravox_refusing_the_agent_means_no_dial(cfg, account, fake, status):
    fake.fail("POST", "/api/agents", status)
    result, row = await bridge(cfg, ai_call(account))
    assert not any(c.startswith("EXEC Dial") for c in result.commands)
    assert row.ai_result["status"] == "failed"
    assert row.ai_result["endReason"].startswith("ultravox-")


@pytest.mark.parametrize("domain", [
    "h.example,evil", "b&PJSIP/other", 'b"c', "x/y", "a b", "${EXTEN}", "",
])
async def test_an_unsafe_sip_domain_is_never_dialled(cfg, account, fake, domain):
    fake.sip["domain"] = domain
    result, row = await bridge(cfg, ai_call(account))
    assert not any(c.startswith("EXEC Dial") for c in result.commands)
    assert row.ai_result["endReason"] in ("bad-sip-domain", "no-sip-domain")


async def test_without_a_key(cfg, account, fake):
    result, row = await bridge(cfg.replace(ultravox_api_key=""), ai_call(account))
    assert result.commands == [] and fake.count("POST") == 0
    assert row.ai_result["endReason"] == "ultravox-not-configured"


async def test_a_deleted_agent(cfg, account, fake):
    row = ai_call(account, agent_id="gone", ai={"systemPrompt": "p"})
    result, row = await bridge(cfg, row)
    assert not any(c.startswith("EXEC Dial") for c in result.commands)
    assert row.ai_result["endReason"] == "agent-not-found"


async def test_configured_sip_endpoint_and_registration_mode(cfg, account, fake):
    result, _ = await bridge(cfg.replace(ultravox_sip_endpoint="ultravox"), ai_call(account))
    (agent,) = fake.agents.values()
    assert the_dial(agent["agentId"], endpoint="ultravox") in result.commands
    result, _ = await bridge(cfg.replace(ultravox_sip_endpoint="ultravox",
                                         ultravox_sip_mode="register"),
                             ai_call(account, call_sid="CA" + "3" * 32))
    assert f'EXEC Dial "PJSIP/agent_{agent["agentId"]}@ultravox,30,mS(300)"' in result.commands


def test_dial_target_refuses_a_bad_endpoint(cfg):
    with pytest.raises(ai_bridge.BridgeError):
        ai_bridge.dial_target(cfg.replace(ultravox_sip_endpoint="a/b"),
                              "3c90c3cc-0d44-4b50-8888-8dd25736052a", DOMAIN)
