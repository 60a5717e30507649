"""The AI bridge on the two real Asterisks: the answered call's channel sends an INVITE to
`agent_<id>@<domain>` (the domain from the fake's GET /api/sip: the test carrier, which
plays Ultravox's SIP side and admits the INVITE only from an allowlisted address). A plain
`systemPrompt` call goes through the agent trunx manages for it. Audio the callee plays
crosses the bridge (the carrier records it); when the "agent" hangs up, the transcript and
end reason land on the Call row."""
from __future__ import annotations

import array
import asyncio
import wave

import pytest

from agi_server.agi.server import FastAGIServer
from agi_server.ai import bridge as ai_bridge
from devtools.stack import wait_until
from devtools.stack.ami import originate_local
from tests.fakes.fake_ultravox import attach_carrier
from tests.integration import ai_support
from tests.integration.test_ai_bridge_emulated import row_dict
from trunx import calls
from trunx.models import Account, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AGENT_LINE = "+12025550103"     # carrier: answers, records, runs STEPS_12025550103


fake, cfg = ai_support.fake, ai_support.cfg     # the same fixtures


async def test_an_ai_call_is_bridged_to_ultravox_over_sip(cfg, fake, pbx, carrier, pbx_ami,
                                                          carrier_ami):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE)
    # the "agent" listens for 4 s, then hangs up (agent_hangup)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w4-h"})
    account = Account.create(name="ai-asterisk")
    row = Call.create(account=account, direction="outbound", from_number="+14155559876",
                      to_number="+19495551234", status="answered", provider="ultravox",
                      call_sid="CA" + "1" * 32, ai={"systemPrompt": "Confirm."})

    async def route(ch):      # stands in for the outbound route: the call is answered
        await ch.answer()
        await ai_bridge.run_ai_call(ch, row_dict(row), cfg)

    server = FastAGIServer(cfg, {"ivr": route})
    await server.start()
    try:
        # the callee (the near half of a Local channel) says something: two beeps
        # the callee would stay for a minute: only the agent's hangUp ends the call sooner
        call = await originate_local(pbx_ami, "+19495551234", "w1-pbeep-w1-pbeep-w60")
        dial_end = await pbx_ami.wait_event(
            lambda e: e.get("Event") == "DialEnd"
            and e.get("DestChannel", "").startswith("PJSIP/carrier-"), timeout=20)
        assert dial_end["DialStatus"] == "ANSWER"
        await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Hangup" and e.get("Channel", "").startswith(
                "PJSIP/pbx-"), timeout=20)
        async with asyncio.timeout(20):
            while (Call.get_by_id(row.id).ai_result or {}).get("status") in (
                    None, "starting", "active"):
                await asyncio.sleep(0.1)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
    finally:
        await server.stop()
    assert server.stats["errors"] == 0

    recordings = wait_until(
        lambda: carrier.finished_recordings(f"{AGENT_LINE[1:]}-*.wav"),
        timeout=5, message="the carrier's recording of the bridged call")
    with wave.open(str(recordings[-1])) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    assert max(map(abs, samples)) > 1000      # the callee's beeps reached "Ultravox"

    row = Call.get_by_id(row.id)
    (uv_id,) = fake.calls
    (agent,) = fake.agents.values()     # the agent trunx made for this systemPrompt
    assert agent["callTemplate"]["systemPrompt"] == "Confirm."
    assert fake.invites[0]["user"] == f"agent_{agent['agentId']}"
    assert fake.invites[0]["admitted"] is True
    assert row.ai_result["status"] == "ended"
    assert row.ai_result["endReason"] == "agent_hangup"
    assert row.ai_result["ultravoxCallId"] == uv_id
    assert calls.call_json(row)["ai"]["transcript"].startswith("Agent: Hi, this is Sarah")


async def test_an_invite_from_an_address_not_allowlisted_is_refused(cfg, fake, pbx, carrier,
                                                                   pbx_ami, carrier_ami):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow="10.9.8.0/24")
    account = Account.create(name="ai-refused")
    row = Call.create(account=account, direction="outbound", from_number="+14155559876",
                      to_number="+19495551234", status="answered", provider="ultravox",
                      call_sid="CA" + "2" * 32, ai={"systemPrompt": "Confirm."})

    async def route(ch):
        await ch.answer()
        await ai_bridge.run_ai_call(ch, row_dict(row), cfg)

    server = FastAGIServer(cfg, {"ivr": route})
    await server.start()
    try:
        call = await originate_local(pbx_ami, "+19495551234", "w20")
        async with asyncio.timeout(20):
            while (Call.get_by_id(row.id).ai_result or {}).get("status") in (
                    None, "starting", "active"):
                await asyncio.sleep(0.1)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
    finally:
        await server.stop()
    result = Call.get_by_id(row.id).ai_result
    assert result["status"] == "failed" and result["endReason"].startswith("dial-")
    assert [i["admitted"] for i in fake.invites] == [False]
    assert fake.calls == {}



async def test_the_agents_cold_transfer_is_carried_out_by_asterisk(cfg, fake, pbx, carrier,
                                                                   pbx_ami, carrier_ami,
                                                                   redis_server):
    """The agent's coldTransfer reaches us as a REFER on the leg to Ultravox (the carrier's
    Transfer() sends one); the caller moves to [trunx-ai-transfer] and the engine's
    `ai-transfer` route dials the number over the trunk."""
    import redis.asyncio as aioredis

    from agi_server.ai import cold_transfer as ai_transfer

    target = "+12025550107"
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": f"w2-tsip:{target}@127.0.0.1:{pbx.sip_port}-w5"})
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{target[1:]}", "Value": "w2-h"})
    account = Account.create(name="ai-transfer")
    row = Call.create(account=account, direction="outbound", from_number="+14155559876",
                      to_number="+19495551234", status="answered", provider="ultravox",
                      call_sid="CA" + "4" * 32, ai={"systemPrompt": "Transfer them."})
    aredis = aioredis.from_url(redis_server.url, decode_responses=True)

    async def db(fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def route(ch):
        await ch.answer()
        await ai_bridge.run_ai_call(ch, row_dict(row), cfg)

    async def transfer(ch):
        await ai_transfer.run_transfer(ch, cfg, redis=aredis, db=db)

    server = FastAGIServer(cfg, {"ivr": route, "ai-transfer": transfer})
    await server.start()
    try:
        call = await originate_local(pbx_ami, "+19495551234", "w60")
        at_target = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == target, 20)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
        async with asyncio.timeout(20):
            while (Call.get_by_id(row.id).ai_result or {}).get("status") in (
                    None, "starting", "active") \
                    or "transfer" not in Call.get_by_id(row.id).ai_result:
                await asyncio.sleep(0.1)
    finally:
        await server.stop()
        await aredis.aclose()
    assert server.stats["errors"] == 0 and at_target
    result = Call.get_by_id(row.id).ai_result
    assert result["transfer"] == {"to": target, "status": "answer"}
    assert result["status"] == "ended" and result["ultravoxCallId"] == next(iter(fake.calls))
