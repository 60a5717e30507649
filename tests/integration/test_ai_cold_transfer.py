"""The agent's coldTransfer carried out on the call, on the two real Asterisks, through the
engine itself (its `ivr`, `outbound` and `ai-transfer` routes) and the outgoing Ultravox
flow (the carrier plays Ultravox's SIP side and INVITEs the PBX;
tests/fakes/ultravox_outgoing.py).

The agent's `transfers` become built-in coldTransfer tools whose `target` override names
where to go (trunx.ultravox_mapping; Ultravox's call-transfers guide). When the carrier's
script says `x`, the fake's agent calls that tool: the carrier sends a REFER to the
target it reads from the call's tools (tests/fakes/fake_ultravox.py). Then:

- a number (an IVR caller, and an agent call placed through the API): the PBX dials it
  over the trunk (the carrier sees the dial), the AI leg ends;
- an IVR node: the caller hears that node's prompt and their next key walks the IVR, on
  the same call record, after the agent's steps; a node gone since the agent was saved
  takes the caller to the IVR's entry instead of dropping them;
- a target the PBX does not take: the REFER is refused, the tool call fails, the caller
  stays with the agent.
"""
from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from admin_api import assets, create_app
from devtools.stack import wait_until
from devtools.stack.ami import event_is, originate_local
from tests.engine_support import make_config, running_engine, seed_account
from tests.fakes.fake_ultravox import attach_carrier
from tests.fakes.ultravox_outgoing import attach_outgoing
from tests.integration import ai_support
from tests.integration.ai_support import KEY
from tests.integration.outbound_support import (
    ANSWERS,
    carrier_channels,
    make_account,
    outbound_config,
)
from tests.integration.test_call_actions_asterisk import tone_seconds
from tests.store_support import store_on
from trunx import accounts, db, ultravox_mapping
from trunx.media import prepare_upload
from trunx.models import Account, Agent, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

fake, outgoing_user = ai_support.fake, ai_support.outgoing_user     # the same fixtures

AGENT_LINE = "+12025550106"      # the carrier line the agent's leg plays (records, STEPS)
TARGET = "+12025550107"          # a carrier line that answers: a human at that number
DID = "+19495550181"
IVR = "front"
FROM_DID = "+12025559871"        # the agent call's caller ID (local presence: same area)


@pytest.fixture
async def setup(tmp_path, redis_server, redis, pbx, carrier, carrier_ami, fake,
                outgoing_user):
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)
    attach_outgoing(fake, carrier)
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ultravox_api_key=KEY, ultravox_base_url=fake.base_url,
                      ultravox_end_wait=5.0, ultravox_sip_mode="outgoing",
                      sounds_dir=str(pbx.sounds_dir_host),
                      asterisk_sounds_dir=pbx.sounds_dir_in_root, transfer_timeout=10,
                      **outgoing_user)
    database = db.connect(cfg)
    yield cfg
    database.close()


def make_agent(fake, account, transfers=(), **template) -> Agent:
    """A trunx agent and its Ultravox twin, whose template is trunx's own mapping of it
    (unless `template` gives the twin's tools, as an agent edited in Ultravox's console)."""
    agent = Agent.create(account=account, name="desk", prompt="Help, then transfer.",
                         transfers=list(transfers))
    remote = fake.add_agent("desk", **(template or ultravox_mapping.call_template(agent)))
    agent.ultravox_id = remote["agentId"]
    agent.save()
    return agent


async def wait_record(call, timeout: float = 40) -> Call:
    async with asyncio.timeout(timeout):
        while (row := Call.get_or_none(Call.uniqueid == call.callee_id)) is None \
                or row.ended_at is None or row.ai_result is None \
                or row.ai_result.get("status") in ("starting", "active"):
            await asyncio.sleep(0.1)
    return row


def events(row: Call) -> list[tuple]:
    return [(p["node"], p["event"]) for p in row.path]


async def test_the_agent_transfers_the_caller_to_a_number(setup, redis, pbx_ami, carrier_ami,
                                                          fake):
    cfg = setup
    account = Account.create(name="cold-number")
    agent = make_agent(fake, account, [TARGET])
    assert fake.agents[agent.ultravox_id]["callTemplate"]["selectedTools"] == [
        {"toolName": "coldTransfer", "parameterOverrides": {"target": TARGET}}]
    seed_account(cfg, redis, tree={"nodes": {
        "menu": {"audio": "beep", "gather": {"1": "desk"}},
        "desk": {"action": "transfer", "agent": agent.id}}}, did=DID, ivr_id=IVR,
        account=account)
    # the agent talks for a second, then calls coldTransfer; the human there hangs up 2 s
    # after answering
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-x-w30"})
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{TARGET[1:]}", "Value": "w2-h"})
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1-w60")
        dialled = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == TARGET, 30)
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=30)
        row = await wait_record(call)
        async with asyncio.timeout(10):     # the ai-transfer route notes how it went
            while "transfer" not in (Call.get_by_id(row.id).ai_result or {}):
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    row = Call.get_by_id(row.id)
    assert dialled["Exten"] == TARGET                     # the carrier saw the dial
    (uv_id,) = fake.calls
    assert [(t["call"], t["target"]) for t in fake.transfers] == [(uv_id, TARGET)]
    assert fake.calls[uv_id]["ended"] is not None         # the AI leg ended
    assert row.ai_result["status"] == "ended" and row.ai_result["ultravoxCallId"] == uv_id
    assert row.ai_result["transfer"] == {"to": TARGET, "status": "answer"}
    ended = [p for p in row.path if p["event"] == "transfer-ended"]
    assert ended[0]["moved_to"] == TARGET and row.outcome == "transferred"


async def test_an_agent_call_from_the_api_is_transferred_to_a_number(
        tmp_path, redis_server, redis, pbx, carrier, carrier_ami, fake, outgoing_user):
    """`POST /api/voice/agents {transfers}` then `.../call`: the engine's outbound route
    hands the answered callee to the agent over the outgoing flow; the agent's coldTransfer
    takes the callee to the number, and the route does not hang them up."""
    await attach_carrier(fake, carrier, carrier_ami, AGENT_LINE, allow=None)
    attach_outgoing(fake, carrier)
    cfg = outbound_config(tmp_path, redis_server.url, pbx, ultravox_api_key=KEY,
                          ultravox_base_url=fake.base_url, ultravox_end_wait=5.0,
                          ultravox_sip_mode="outgoing", transfer_timeout=10, **outgoing_user)
    account = make_account(cfg, number=FROM_DID)
    client = create_app(cfg, redis=redis).test_client()
    auth = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    agent = client.post("/api/voice/agents", headers=auth, json={
        "name": "Desk", "prompt": "Help, then transfer.", "transfers": [TARGET]})
    assert agent.status_code == 201, agent.get_json()
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-x-w30"})
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{TARGET[1:]}", "Value": "w2-h"})
    placed = client.post(f"/api/voice/agents/{agent.get_json()['id']}/call", headers=auth,
                         json={"to": ANSWERS})
    assert placed.status_code == 201, placed.get_json()
    call_id = placed.get_json()["id"]
    async with running_engine(cfg) as engine:
        dialled = await carrier_ami.wait_event(
            lambda e: e.get("Event") == "Newchannel" and e.get("Exten") == TARGET, 40)
        async with asyncio.timeout(40):
            while "transfer" not in (Call.get_by_id(call_id).ai_result or {}) \
                    or Call.get_by_id(call_id).ai_result["status"] in ("starting", "active"):
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    row = Call.get_by_id(call_id)
    assert dialled["Exten"] == TARGET and carrier_channels(carrier_ami, ANSWERS)
    (uv_id,) = fake.calls
    assert fake.calls[uv_id]["agentId"] == agent.get_json()["ultravoxId"]
    assert [(t["call"], t["target"]) for t in fake.transfers] == [(uv_id, TARGET)]
    assert fake.calls[uv_id]["ended"] is not None         # the AI leg ended
    assert row.ai_result["ultravoxCallId"] == uv_id and row.ai_result["status"] == "ended"
    assert row.ai_result["transfer"] == {"to": TARGET, "status": "answer"}


@pytest.fixture
def tone_wav(tmp_path):
    """Two seconds of 440 Hz: the IVR node's prompt, which the caller's recording shows."""
    wav = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth",
                    "2", "sine", "440", "vol", "0.5"], check=True)
    return wav.read_bytes()


async def test_the_agent_sends_the_caller_back_to_an_ivr_node(
        setup, redis, pbx, pbx_ami, carrier_ami, fake, tmp_path, tone_wav):
    """An IVR call transferred to an agent that sends it back to the IVR's node `more`:
    the caller hears that node's prompt (a 440 Hz tone, in their own recording) and the
    key they press then walks the IVR, on the same call record."""
    cfg = setup
    account = Account.create(name="cold-ivr")
    agent = make_agent(fake, account, [f"ivr:{IVR}#more"])
    assert fake.agents[agent.ultravox_id]["callTemplate"]["selectedTools"] == [
        {"toolName": "coldTransfer", "parameterOverrides": {"target": f"ivr~{IVR}~more"}}]
    tone = assets.create(store_on(redis), account.id, "more-tone",
                         prepare_upload(tone_wav, cfg), cfg, source="upload")
    seed_account(cfg, redis, tree={"nodes": {
        "menu": {"audio": "beep", "gather": {"1": "desk"}},
        "desk": {"action": "transfer", "agent": agent.id},
        "more": {"audio": tone.id, "gather": {"2": "bye"}, "timeout": 15},
        "bye": {"action": "hangup"}}}, did=DID, ivr_id=IVR, account=account)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-x-w30"})
    name = f"caller-{tmp_path.name}.wav"
    heard = f"{pbx.recordings_dir_in_root}/{name}"
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1-w60", variables={"RECFILE": heard})
        leg = await pbx_ami.wait_event(event_is("Newchannel", Uniqueid=call.caller_id), 10)

        def prompt_heard():
            # back in the IVR at `more`, asked as one question (GET OPTION: the prompt,
            # then the wait for a key), and the 2 s prompt heard whole by now: the key
            # below comes in the question's wait, as a caller's after the prompt would
            for r in engine.live_records():
                for p in r.path:
                    if p["node"] == "more" and p["event"] == "enter":
                        return time.monotonic() - r._t0 > p["t"] + 2.5
            return False
        async with asyncio.timeout(40):
            while not prompt_heard():
                await asyncio.sleep(0.1)
        # the caller's next key (from their side of the line, as a phone sends it)
        await pbx_ami.action("PlayDTMF", {"Channel": leg["Channel"], "Digit": "2",
                                          "Duration": "200"})
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
        row = await wait_record(call)
        async with asyncio.timeout(10):
            while Call.get_by_id(row.id).outcome != "hangup":
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    row = Call.get_by_id(row.id)
    (uv_id,) = fake.calls
    assert [(t["call"], t["target"]) for t in fake.transfers] == [(uv_id, f"ivr~{IVR}~more")]
    assert fake.calls[uv_id]["ended"] is not None         # the AI leg ended
    # one record: the IVR, the agent, then the IVR again from `more`
    walked = events(row)
    at = walked.index(("desk", "transfer-ended"))
    assert walked[:at] == [("menu", "enter"), ("menu", "prompt"), ("menu", "digits"),
                           ("desk", "enter"), ("desk", "transfer")]
    assert walked[at:] == [("desk", "transfer-ended"), ("more", "returned"),
                           ("more", "enter"), ("more", "prompt"), ("more", "digits"),
                           ("bye", "enter"), ("bye", "hangup")]
    returned = row.path[at + 1]
    assert (returned["ivr"], returned["version"]) == (IVR, 1)
    assert row.path[at]["moved_to"] == f"ivr:{IVR}#more"
    prompt = row.path[at + 3]
    assert prompt["endpos"] >= 15000     # all 2 s of it (the key came in the wait)
    assert row.path[at + 4]["digits"] == "2"
    assert (row.outcome, row.ai_result["status"]) == ("hangup", "ended")
    assert row.ai_result["transfer"] == {"to": f"ivr:{IVR}#more", "status": "returned"}
    (recording,) = wait_until(lambda: pbx.finished_recordings(name), timeout=10,
                              message="the caller's recording")
    assert tone_seconds(recording) >= 1.5                 # the caller heard `more`


async def test_a_node_gone_since_the_agent_was_saved_does_not_drop_the_caller(
        setup, redis, pbx_ami, carrier_ami, fake):
    """The agent still names `ivr:front#more`, but the IVR no longer has `more` (the API
    checks targets when the agent is saved, not when the IVR changes): the caller is taken
    back to the IVR's entry, and the record says what was asked and why not."""
    cfg = setup
    account = Account.create(name="cold-gone")
    agent = make_agent(fake, account, [f"ivr:{IVR}#more"])
    seed_account(cfg, redis, tree={"nodes": {
        "menu": {"audio": "beep", "gather": {"1": "desk"}, "timeout": 30},
        "desk": {"action": "transfer", "agent": agent.id}}}, did=DID, ivr_id=IVR,
        account=account)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-x-w30"})
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1-w60")

        def back_at_menu():
            for r in engine.live_records():
                walked = [(p["node"], p["event"]) for p in r.path]
                if ("menu", "returned") in walked:
                    return ("menu", "prompt") in walked[walked.index(("menu", "returned")):]
            return False
        async with asyncio.timeout(40):        # back in the IVR: the entry's prompt played
            while not back_at_menu():
                await asyncio.sleep(0.1)
        leg = await pbx_ami.wait_event(event_is("Newchannel", Uniqueid=call.caller_id), 10)
        await pbx_ami.action("Hangup", {"Channel": leg["Channel"]})     # the caller leaves
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=20)
        row = await wait_record(call)
        async with asyncio.timeout(10):
            while Call.get_by_id(row.id).outcome != "caller-hangup":
                await asyncio.sleep(0.1)
        assert engine.server.stats["errors"] == 0
    row = Call.get_by_id(row.id)
    walked = events(row)
    at = walked.index(("menu", "returned"))
    assert walked[at - 1] == ("desk", "transfer-ended")
    assert walked[at + 1:at + 3] == [("menu", "enter"), ("menu", "prompt")]
    returned = row.path[at]
    assert (returned["asked"], returned["reason"]) == (f"ivr:{IVR}#more", "unknown-node")
    assert row.ai_result["transfer"] == {"to": f"ivr:{IVR}#more", "status": "returned",
                                         "reason": "unknown-node"}


async def test_a_target_the_pbx_does_not_take_leaves_the_caller_with_the_agent(
        setup, redis, pbx_ami, carrier_ami, fake):
    """A coldTransfer whose target is neither a number nor an IVR node (an agent edited in
    Ultravox's console): Asterisk refuses the REFER (no such extension), the tool call
    fails, and the caller is still with the agent, who then hangs up."""
    cfg = setup
    account = Account.create(name="cold-refused")
    agent = make_agent(fake, account, systemPrompt="Help.", selectedTools=[
        {"toolName": "coldTransfer", "parameterOverrides": {"target": "sales-desk"}}])
    seed_account(cfg, redis, tree={"nodes": {
        "menu": {"audio": "beep", "gather": {"1": "desk"}},
        "desk": {"action": "transfer", "agent": agent.id}}}, did=DID, ivr_id=IVR,
        account=account)
    await carrier_ami.action("Setvar", {"Variable": f"STEPS_{AGENT_LINE[1:]}",
                                        "Value": "w1-x-w1-h"})
    async with running_engine(cfg) as engine:
        call = await originate_local(pbx_ami, DID, "w1-d1-w60")
        await pbx_ami.wait_event(call.is_hangup_of("caller"), timeout=40)
        row = await wait_record(call)
        assert engine.server.stats["errors"] == 0
    (uv_id,) = fake.calls
    (transfer,) = fake.transfers
    assert (transfer["target"], transfer["status"]) == ("sales-desk", "FAILURE")
    # the agent went on after the failed tool call and ended the call itself
    assert row.ai_result["endReason"] == "agent_hangup" and "transfer" not in row.ai_result
    ended = [p for p in row.path if p["event"] == "transfer-ended"]
    assert "moved_to" not in ended[0] and row.outcome == "transferred"

