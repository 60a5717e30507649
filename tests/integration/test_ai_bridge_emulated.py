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
TARGET = "sip:+12025550101@127.0.0.1:5999"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        server.sip_target = TARGET
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


async def test_an_ai_call_is_dialled_into_ultravox_and_its_transcript_stored(cfg, account,
                                                                            fake):
    result, row = await bridge(cfg, ai_call(account))
    assert result.commands == [f'EXEC Dial "PJSIP/carrier/{TARGET},30"',
                               'GET VARIABLE "DIALSTATUS"']
    sent = fake.last("POST", "/api/calls")["json"]
    assert sent["systemPrompt"] == "Confirm the appointment." and sent["voice"] == "Mark"
    assert sent["medium"] == {"sip": {"incoming": {}}}
    assert sent["firstSpeakerSettings"] == {"agent": {}} and sent["maxDuration"] == "300s"
    assert sent["metadata"] == {"crm": "42", "trunxCallId": row.id,
                                "trunxCallSid": "CA" + "0" * 32}
    (uv_id,) = fake.calls
    assert row.ai_result == {
        "status": "ended", "endReason": "hangup", "duration": 12, "ultravoxCallId": uv_id,
        "transcript": "Agent: Hi, this is Sarah from Downtown Dental.\n"
                      "User: Yes, this is John."}
    # what GET /api/voice/{id} shows, as the seed has it
    assert calls.call_json(row)["ai"] == {
        "status": "ended", "transcript": row.ai_result["transcript"], "duration": 12,
        "endReason": "hangup"}


async def test_an_agent_call_goes_through_the_ultravox_agent(cfg, account, fake):
    remote = fake._create_agent({"name": "Confirmer", "callTemplate": {
        "systemPrompt": "p", "voice": "Mark"}})[1]
    agent = Agent.create(account=account, name="Confirmer", prompt="p", voice="Mark",
                         max_duration=120, ultravox_id=remote["agentId"])
    row = ai_call(account, agent_id=agent.id, max_duration=120.0,
                  ai={"systemPrompt": "p", "ultravoxAgentId": remote["agentId"]})
    fake.script["endReason"] = "agent_hangup"
    _, row = await bridge(cfg, row)
    sent = fake.last("POST", f"/api/agents/{remote['agentId']}/calls")["json"]
    assert sent["medium"] == {"sip": {"incoming": {}}} and sent["maxDuration"] == "120s"
    assert sent["metadata"]["trunxCallId"] == row.id
    assert fake.count("POST", "/api/calls") == 0
    assert row.ai_result["status"] == "ended" and row.ai_result["endReason"] == "agent_hangup"


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
    result, row = await bridge(cfg, ai_call(account), hangup_after=0)
    assert result.commands[0].startswith('EXEC Dial "PJSIP/carrier/')
    assert row.ai_result["status"] == "ended" and row.ai_result["transcript"]


@pytest.mark.parametrize("status", [500, 401, 400])
async def test_ultravox_refusing_the_call_means_no_dial(cfg, account, fake, status):
    fake.fail("POST", "/api/calls", status)
    result, row = await bridge(cfg, ai_call(account))
    assert result.commands == []
    assert row.ai_result["status"] == "failed"
    assert row.ai_result["endReason"].startswith("ultravox-")


@pytest.mark.parametrize("target", [
    "sip:x@h.example,evil", "sip:a@b&PJSIP/other", 'sip:a"@b', "wss://x/y", "sip:a b@c",
    "sip:${EXTEN}@h",
])
async def test_an_unsafe_join_url_is_never_dialled(cfg, account, fake, target):
    fake.sip_target = target
    result, row = await bridge(cfg, ai_call(account))
    assert result.commands == []
    assert row.ai_result["endReason"] == "bad-join-url"


async def test_without_a_key(cfg, account, fake):
    result, row = await bridge(cfg.replace(ultravox_api_key=""), ai_call(account))
    assert result.commands == [] and fake.count("POST") == 0
    assert row.ai_result["endReason"] == "ultravox-not-configured"


async def test_a_deleted_agent(cfg, account, fake):
    row = ai_call(account, agent_id="gone", ai={"systemPrompt": "p"})
    result, row = await bridge(cfg, row)
    assert result.commands == [] and row.ai_result["endReason"] == "agent-not-found"


async def test_configured_sip_endpoint(cfg, account):
    result, _ = await bridge(cfg.replace(ultravox_sip_endpoint="ultravox"), ai_call(account))
    assert result.commands[0] == f'EXEC Dial "PJSIP/ultravox/{TARGET},30"'


def test_dial_string_refuses_a_bad_endpoint(cfg):
    with pytest.raises(ai_bridge.BridgeError):
        ai_bridge.dial_string(cfg.replace(ultravox_sip_endpoint="a/b"), TARGET)
