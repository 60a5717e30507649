"""The outgoing Ultravox flow on the two real Asterisks (docs/ai.md, "The outgoing flow"):
an IVR caller presses 1 then 2 and reaches an agent whose prompt uses {{keys}} and
{{nodes}}. trunx creates the agent call over HTTP (POST /api/agents/{id}/calls) with the
IVR path as templateContext and metadata and the SIP medium's outgoing form; the fake
Ultravox fills the prompt and has the carrier (Ultravox's SIP side) INVITE
sip:<token>@<the PBX>, authenticating as the PJSIP user pjsip_ultravox_outgoing.conf
holds; the PBX bridges that leg to the caller waiting on hold, and the transcript and end
reason land on the caller's trunx call by the call id the request returned."""
from __future__ import annotations

import asyncio

import pytest

from devtools.stack.ami import event_is, originate_local
from tests.engine_support import make_config, running_engine, seed_account
from tests.fakes.fake_ultravox import attach_carrier
from tests.fakes.ultravox_outgoing import OUTGOING_PASSWORD, OUTGOING_USER, attach_outgoing
from tests.integration import ai_support
from tests.integration.ai_support import KEY
from tests.integration.test_ultravox_sip_admission import agent_call
from trunx import db, ultravox_sip
from trunx.models import Account, Agent, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AGENT_LINE = "+12025550105"
DID = "+19495550169"
PROMPT = "The caller pressed {{keys}} on the way {{nodes}}; they called {{did}}."


fake, outgoing_user = ai_support.fake, ai_support.outgoing_user     # the same fixtures


async def test_ivr_keys_reach_the_agent_prompt_by_template_context(
        tmp_path, redis_server, redis, pbx, carrier, pbx_ami, carrier_ami, fake,
        outgoing_user):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)  # no INVITE
    attach_outgoing(fake, carrier)                                            # admitted
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "pbeep-w1-h"})      # the agent's script
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ultravox_api_key=KEY, ultravox_base_url=fake.base_url,
                      ultravox_end_wait=5.0, **outgoing_user)
    database = db.connect(cfg)
    try:
        remote = fake.add_agent("keys-agent", systemPrompt=PROMPT)
        account = Account.create(name="ivr-outgoing")
        agent = Agent.create(account=account, name="keys-agent", prompt=PROMPT,
                             ultravox_id=remote["agentId"])
        tree = {"nodes": {"menu": {"audio": "beep", "gather": {"1": "more"}},
                          "more": {"audio": "beep", "gather": {"2": "sales"}},
                          "sales": {"action": "transfer", "agent": agent.id}}}
        seed_account(cfg, redis, tree=tree, did=DID, ivr_id="keys", account=account)
        async with running_engine(cfg) as engine:
            call = await originate_local(pbx_ami, DID, "w1-d1-w1.5-d2-w30",
                                         caller_id="T <+12025550177>")
            await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=40)
            async with asyncio.timeout(30):
                while (row := Call.get_or_none(Call.uniqueid == call.callee_id)) is None \
                        or row.ended_at is None:
                    await asyncio.sleep(0.1)
            assert engine.server.stats["errors"] == 0
    except BaseException:
        print("placed", getattr(fake, "outgoing_placed", None), fake.agent_calls)
        print(pbx.log_tail(8000), carrier.log_tail(4000))
        raise
    finally:
        database.close()

    assert fake.invites == []                  # no INVITE to agent_<id>: Ultravox called us
    (body,) = fake.agent_calls
    context = body["templateContext"]
    assert (context["keys"], context["did"], context["caller"]) == ("1,2", DID, "+12025550177")
    assert (context["nodes"], context["ivr"]) == ("menu>more>sales", "keys v1")
    assert body["metadata"]["trunxDigits"] == "1,2" and body["metadata"]["trunxCallId"] == row.id
    outgoing = body["medium"]["sip"]["outgoing"]
    assert outgoing["to"].endswith(f"@127.0.0.1:{pbx.sip_port}")
    assert (outgoing["username"], outgoing["password"]) == (OUTGOING_USER, OUTGOING_PASSWORD)
    (uv_id,) = fake.calls
    # the prompt the agent "used": the caller's keys filled in
    assert fake.calls[uv_id]["systemPrompt"] == \
        f"The caller pressed 1,2 on the way {context['nodes']}; they called {DID}."
    assert fake.calls[uv_id]["joined"] is not None
    assert (row.outcome, row.ai_result["status"]) == ("transferred", "ended")
    assert row.ai_result["ultravoxCallId"] == uv_id
    assert row.ai_result["endReason"] == "agent_hangup"
    assert row.ai_result["transcript"].startswith("Agent: ")


async def test_the_outgoing_user_reaches_no_call_but_a_waiting_one(pbx, carrier, carrier_ami,
                                                                   fake, outgoing_user):
    """Authenticated as Ultravox, an INVITE to a well-formed token no caller waits under, to
    an agent user, or to a number (what [inbound] would take) is refused: the PJSIP user
    lands only in [trunx-ultravox-out], which bridges to nothing else."""
    attach_outgoing(fake, carrier)       # the carrier answers the digest challenge
    token = ultravox_sip.new_token()
    for user in (token, "agent_x", "+19495550111"):
        response = await carrier_ami.action("Originate", [
            ("Channel", f"PJSIP/ultravox-out/sip:{user}@127.0.0.1:{pbx.sip_port}"),
            ("Application", "Wait"), ("Data", "1"), ("Timeout", "15000"),
            ("Async", "true")])
        event = await carrier_ami.wait_event(
            event_is("OriginateResponse", ActionID=response["ActionID"]), timeout=15)
        assert event["Response"] == "Failure", (user, event)
    log = pbx.log_tail(400_000)
    assert f"[{token}@trunx-ultravox-out:1]" in log          # looked for, found no caller
    assert "+19495550111@inbound" not in log and "+19495550111@trunx-ivr" not in log


async def test_mode_outgoing_places_an_agent_call_that_way(tmp_path, redis_server, pbx, carrier,
                                                            pbx_ami, carrier_ami, fake,
                                                            outgoing_user):
    """`ultravox_sip_mode = outgoing`: an outbound agent call whose prompt has no variables
    goes the same way, and its end lands on it by the call id the request returned."""
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)
    attach_outgoing(fake, carrier)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-h"})
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ultravox_api_key=KEY, ultravox_base_url=fake.base_url,
                      ultravox_end_wait=5.0, ultravox_sip_mode="outgoing", **outgoing_user)
    database = db.connect(cfg)
    try:
        row, uv_agent = await agent_call(cfg, fake, pbx_ami, "outgoing-mode")
    finally:
        database.close()
    (body,) = fake.agent_calls
    assert body["templateContext"]["to"] == "+19495551234" and fake.invites == []
    (uv_id,) = fake.calls
    assert fake.calls[uv_id]["agentId"] == uv_agent
    assert row.ai_result["status"] == "ended" and row.ai_result["ultravoxCallId"] == uv_id
    assert row.ai_result["endReason"] == "agent_hangup"
