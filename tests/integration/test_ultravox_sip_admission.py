"""Both admissions Ultravox's SIP guide documents, set up by `trunx ultravox sip` and used
by the AI bridge on the two real Asterisks (the carrier plays Ultravox's SIP side,
tests/fakes/fake_ultravox.py):

- allowlist: `trunx ultravox sip allowlist 127.0.0.1` adds the PBX's address to
  allowedCidrRanges (PATCH /api/sip); the INVITE goes to agent_<id>@<domain>;
- register: `trunx ultravox sip register` writes the PBX's PJSIP user and creates the
  registration (POST /api/sip/registrations); the carrier registers with the PBX, and the
  INVITE goes to agent_<id> at the registered contact.

In each, an agent call (and, registered, an IVR transfer to an agent too) reaches the
agent and its transcript and end reason land on the trunx call."""
from __future__ import annotations

import asyncio
import json

import pytest

from agi_server.agi.server import FastAGIServer
from agi_server.ai import bridge as ai_bridge
from devtools.stack import wait_until
from devtools.stack.ami import originate_local
from tests.engine_support import running_engine, seed_account
from tests.fakes.fake_ultravox import attach_carrier, register_from_carrier
from tests.integration import ai_support
from tests.integration.test_ai_bridge_emulated import row_dict
from trunx.models import Account, Agent, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AGENT_LINE = "+12025550104"


fake, cfg, trunx_cli = ai_support.fake, ai_support.cfg, ai_support.trunx_cli


async def agent_call(cfg, fake, pbx_ami, name: str) -> Call:
    remote = fake.add_agent(name, systemPrompt="Confirm.")
    account = Account.create(name=name)
    agent = Agent.create(account=account, name=name, prompt="Confirm.",
                         ultravox_id=remote["agentId"])
    row = Call.create(account=account, direction="outbound", from_number="+14155559876",
                      to_number="+19495551234", status="answered", provider="ultravox",
                      agent_id=agent.id, ai={"systemPrompt": "Confirm."})

    async def route(ch):
        await ch.answer()
        await ai_bridge.run_ai_call(ch, row_dict(row), cfg)

    server = FastAGIServer(cfg, {"ivr": route})
    await server.start()
    try:
        call = await originate_local(pbx_ami, "+19495551234", "w1-pbeep-w20")
        async with asyncio.timeout(25):
            while (Call.get_by_id(row.id).ai_result or {}).get("status") in (
                    None, "starting", "active"):
                await asyncio.sleep(0.1)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
    finally:
        await server.stop()
    assert server.stats["errors"] == 0
    return Call.get_by_id(row.id), remote["agentId"]


async def test_allowlisted_by_trunx_ultravox_sip_allowlist(cfg, fake, tmp_path, pbx, carrier,
                                                           pbx_ami, carrier_ami):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w2-h"})
    sip = trunx_cli(cfg, tmp_path, "ultravox", "sip", "allowlist", "127.0.0.1")
    assert (sip["allowedCidrRanges"], sip["allowAllAgents"]) == (["127.0.0.1/32"], True)
    row, uv_agent = await agent_call(cfg.replace(ultravox_sip_mode="allowlist"), fake, pbx_ami,
                                     "allowlisted")
    (invite,) = fake.invites
    assert (invite["user"], invite["admitted"]) == (f"agent_{uv_agent}", True)
    assert invite["endpoint"] == "pbx"          # came in as the PBX, by its address
    (uv_id,) = fake.calls
    assert row.ai_result["status"] == "ended" and row.ai_result["ultravoxCallId"] == uv_id
    assert row.ai_result["endReason"] == "agent_hangup"
    assert row.ai_result["transcript"].startswith("Agent: ")


async def test_registered_by_trunx_ultravox_sip_register(cfg, fake, tmp_path, pbx, carrier,
                                                         pbx_ami, carrier_ami, redis):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)   # no allowlist
    register_from_carrier(fake, carrier)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w2-h"})
    etc = pbx.instance_dir_host / "etc"
    done = trunx_cli(cfg, tmp_path, "ultravox", "sip", "register", "--proxy",
                     f"127.0.0.1:{pbx.sip_port}", "--username", "ultravox",
                     "--asterisk-etc", str(etc))
    assert done["wrote"].endswith("pjsip_ultravox.conf") and "password" not in json.dumps(done)
    pbx.cli("module reload res_pjsip.so")
    try:
        wait_until(lambda: "Registered" in carrier.cli("pjsip show registrations"),
                   timeout=15, message="Ultravox (the carrier) registered with the PBX")
    except TimeoutError:
        print(carrier.cli("pjsip show registrations"), pbx.cli("pjsip show endpoints"),
              pbx.cli("pjsip show aors"), pbx.log_tail(3000), carrier.log_tail(3000))
        raise
    registered = cfg.replace(ultravox_sip_mode="register", ultravox_sip_endpoint="ultravox")
    try:
        row, uv_agent = await agent_call(registered, fake, pbx_ami, "registered")
        ivr_row, ivr_agent = await ivr_transfer(registered, fake, pbx_ami, redis)
    finally:
        (carrier.instance_dir_host / "etc" / "pjsip_ultravox_registration.conf").unlink()
        carrier.cli("module reload res_pjsip.so")
        (etc / "pjsip_ultravox.conf").unlink()
        pbx.cli("module reload res_pjsip.so")
    assert [(i["user"], i["admitted"], i["endpoint"]) for i in fake.invites] == [
        (f"agent_{uv_agent}", True, "ultravox-registered"),    # over the registration,
        (f"agent_{ivr_agent}", True, "ultravox-registered")]   # not by IP
    first, second = fake.calls
    assert row.ai_result["status"] == "ended" and row.ai_result["ultravoxCallId"] == first
    assert row.ai_result["endReason"] == "agent_hangup"
    assert (ivr_row.outcome, ivr_row.ai_result["status"]) == ("transferred", "ended")
    assert ivr_row.ai_result["ultravoxCallId"] == second
    assert ivr_row.ai_result["transcript"].startswith("Agent: ")


async def ivr_transfer(cfg, fake, pbx_ami, redis):
    """A caller presses 1 in an IVR whose key 1 transfers to an agent."""
    remote = fake.add_agent("ivr-agent", systemPrompt="Sell.")
    account = Account.create(name="ivr-registered")
    agent = Agent.create(account=account, name="ivr-agent", prompt="Sell.",
                         ultravox_id=remote["agentId"])
    did = "+19495550168"
    tree = {"nodes": {"menu": {"audio": "beep", "gather": {"1": "sales"}},
                      "sales": {"action": "transfer", "agent": agent.id}}}
    seed_account(cfg, redis, tree=tree, did=did, ivr_id="sales", account=account)
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, did, "w1-d1-w30", caller_id="T <+12025550177>")
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=40)
        async with asyncio.timeout(30):
            while (row := Call.get_or_none(Call.uniqueid == call.callee_id)) is None \
                    or row.ended_at is None:
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    return row, remote["agentId"]
