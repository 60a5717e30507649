"""The AI bridge's outgoing flow through a real FastAGI session (bench.agi_emulator plays
Asterisk; the flow on the two real Asterisks is test_ultravox_outgoing.py): which calls
take it, what trunx asks Ultravox for, and how it fails."""
from __future__ import annotations

import re

import pytest

from tests.fakes.fake_ultravox import FakeUltravox
from tests.integration.test_ai_bridge_emulated import KEY, ai_call, bridge
from trunx import db
from trunx.models import Account, Agent

HOST = "pbx.example.com:5060"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        server.emulate_invites = True
        yield server


def config(tmp_path, fake, **kw):
    from tests.engine_support import make_config
    return make_config(tmp_path, "redis://127.0.0.1:1/0", ultravox_api_key=KEY,
                       ultravox_base_url=fake.base_url, ultravox_end_wait=3.0, **kw)


@pytest.fixture
def cfg(tmp_path, fake):
    cfg = config(tmp_path, fake, ultravox_outgoing_host=HOST,
                 ultravox_outgoing_username="uv-out", ultravox_outgoing_password="s3cret")
    database = db.connect(cfg)
    yield cfg
    database.close()


def dialled_token(commands: list[str]) -> str:
    (dial,) = [c for c in commands if c.startswith("EXEC Dial")]
    m = re.fullmatch(r'EXEC Dial "Local/(uv[0-9a-f]{32})@trunx-ai-meet,30,mS\(300\)"', dial)
    assert m, dial
    return m.group(1)


async def test_a_plain_prompt_with_variables_is_created_over_http_with_its_context(
        cfg, fake):
    account = Account.create(name="plain")
    row = ai_call(account, ai={"systemPrompt": "You are calling {{to}} for {{from}}."})
    result, row = await bridge(cfg, row)
    token = dialled_token(result.commands)
    (body,) = fake.agent_calls
    assert body["medium"] == {"sip": {"outgoing": {
        "to": f"sip:{token}@{HOST}", "from": "+14155559876",
        "username": "uv-out", "password": "s3cret"}}}
    assert body["templateContext"]["to"] == "+14155551234"
    assert body["templateContext"]["keys"] == ""            # no IVR on an outbound call
    assert body["metadata"] == {"crm": "42", "trunxCallId": row.id}
    (uv_id,) = fake.calls
    assert fake.calls[uv_id]["systemPrompt"] == "You are calling +14155551234 for +14155559876."
    assert row.ai_result["status"] == "ended" and row.ai_result["ultravoxCallId"] == uv_id
    assert fake.invites == [] and fake.count("GET", "/api/sip") == 0


async def test_a_prompt_without_variables_keeps_the_invite_flow(cfg, fake):
    result, row = await bridge(cfg, ai_call(Account.create(name="no-vars")))
    assert fake.agent_calls == [] and any("sip:agent_" in c for c in result.commands)
    assert row.ai_result["status"] == "ended"


async def test_mode_outgoing_takes_every_call_that_way(cfg, fake):
    result, row = await bridge(cfg.replace(ultravox_sip_mode="outgoing"),
                               ai_call(Account.create(name="every")))
    dialled_token(result.commands)
    assert len(fake.agent_calls) == 1 and row.ai_result["status"] == "ended"


async def test_without_an_outgoing_host_the_call_fails_with_a_reason(tmp_path, fake):
    cfg = config(tmp_path, fake)
    database = db.connect(cfg)
    try:
        account = Account.create(name="unset")
        remote = fake.add_agent("vars", systemPrompt="Pressed {{keys}}")
        agent = Agent.create(account=account, name="vars", prompt="Pressed {{keys}}",
                             ultravox_id=remote["agentId"])
        result, row = await bridge(cfg, ai_call(account, agent_id=agent.id))
    finally:
        database.close()
    assert (row.ai_result["status"], row.ai_result["endReason"]) == \
        ("failed", "outgoing-not-configured")
    assert fake.count("POST") == 0 and not any(c.startswith("EXEC Dial")
                                               for c in result.commands)


async def test_ultravox_refusing_the_context_fails_the_call_before_any_dial(cfg, fake):
    account = Account.create(name="refused")
    # an agent changed in Ultravox's console to use a variable trunx does not fill
    remote = fake.add_agent("console", systemPrompt="Hi {{customer}} {{keys}}")
    agent = Agent.create(account=account, name="console", prompt="Hi {{keys}}",
                         ultravox_id=remote["agentId"])
    result, row = await bridge(cfg, ai_call(account, agent_id=agent.id))
    assert row.ai_result["status"] == "failed"
    assert row.ai_result["endReason"].startswith("ultravox")
    assert fake.calls == {} and not any(c.startswith("EXEC Dial") for c in result.commands)
