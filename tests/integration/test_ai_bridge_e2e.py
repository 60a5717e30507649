"""An agent call end to end on the two real Asterisks: POST /api/voice/agents/{id}/call picks
the DID, the engine originates over AMI, the carrier's callee answers, the engine's outbound
route hands the call to the AI bridge, which has (fake) Ultravox create the agent call and
dials its SIP address (the carrier again, standing in for Ultravox's SIP side). When the
"agent" hangs up, GET /api/voice/{id}'s `ai` has the transcript and end reason."""
from __future__ import annotations

import asyncio

import pytest

from admin_api import create_app
from tests.engine_support import running_engine
from tests.fakes.fake_ultravox import FakeUltravox, attach_carrier
from tests.integration.outbound_support import (
    ANSWERS,
    carrier_channels,
    make_account,
    outbound_config,
    wait_status,
)
from trunx import accounts, calls
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

KEY = "uv-e2e-key"
DID = "+12025559876"               # same area code as the callee: picked by local presence
AGENT_LINE = "+12025550104"        # the carrier answers it as "Ultravox", runs STEPS_...


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier, fake):
    return outbound_config(tmp_path, redis_server.url, pbx, ultravox_api_key=KEY,
                           ultravox_base_url=fake.base_url, ultravox_end_wait=5.0)


async def test_an_agent_call_from_the_api_to_the_transcript(cfg, fake, redis, carrier,
                                                            carrier_ami):
    account = make_account(cfg, number=DID)
    client = create_app(cfg, redis=redis).test_client()
    auth = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w3-h"})   # the agent talks 3 s, hangs up

    agent = client.post("/api/voice/agents", headers=auth, json={
        "name": "Appointment Confirmer", "prompt": "Confirm the appointment.",
        "voice": "Mark", "first_message": "Hi, this is Sarah."}).get_json()
    placed = client.post(f"/api/voice/agents/{agent['id']}/call", headers=auth,
                         json={"to": ANSWERS})
    assert placed.status_code == 201, placed.get_json()
    body = placed.get_json()
    assert (body["from"], body["fromReason"]) == (DID, "same-area-code")

    async with running_engine(cfg) as engine:
        row = await wait_status(body["id"], timeout=60)
        async with asyncio.timeout(20):
            while (Call.get_by_id(body["id"]).ai_result or {}).get("status") in (
                    None, "starting", "active"):
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    row = Call.get_by_id(body["id"])
    assert row.status == "completed"
    assert carrier_channels(carrier_ami, ANSWERS)       # the callee's phone rang
    # and "Ultravox" got the INVITE to the agent's SIP user, and admitted it
    assert carrier_channels(carrier_ami, f"agent_{agent['ultravoxId']}")
    assert [(i["user"], i["admitted"]) for i in fake.invites] == \
        [(f"agent_{agent['ultravoxId']}", True)]
    (uv_id,) = fake.calls
    assert row.ai_result["ultravoxCallId"] == uv_id
    ai = calls.call_json(row)["ai"]
    assert ai["status"] == "ended" and ai["endReason"] == "agent_hangup"
    assert ai["transcript"].startswith("Agent: ")
