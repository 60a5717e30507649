"""trunx.ultravox.Ultravox against the local fake (tests/fakes/fake_ultravox.py), which
speaks Ultravox's documented shapes over real HTTP on loopback."""
from __future__ import annotations

import pytest

from admin_api.errors import status_for
from tests.fakes.fake_ultravox import FakeUltravox
from trunx import ultravox_mapping
from trunx.ultravox import Ultravox, UltravoxError

KEY = "uv-test-key"


@pytest.fixture
def fake():
    with FakeUltravox(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(fake):
    with Ultravox(KEY, fake.base_url, timeout=(2.0, 2.0)) as c:
        yield c


def test_agent_crud(client, fake):
    made = client.create_agent("Confirmer", {"systemPrompt": "p", "voice": "Mark"})
    agent_id = made["agentId"]
    assert fake.last("POST", "/api/agents")["headers"]["X-API-Key"] == KEY
    assert client.get_agent(agent_id)["callTemplate"]["systemPrompt"] == "p"
    updated = client.update_agent(agent_id, call_template={"systemPrompt": "q"})
    assert updated["callTemplate"]["systemPrompt"] == "q"
    assert fake.last("PATCH", "/api/agents")["json"] == {"callTemplate": {"systemPrompt": "q"}}
    assert client.delete_agent(agent_id) is None
    with pytest.raises(UltravoxError) as info:
        client.get_agent(agent_id)
    assert info.value.not_found and info.value.code == "ultravox-not-found"


def test_a_call_an_invite_made_is_listed_by_agent_and_ends_with_a_transcript(client, fake):
    fake.emulate_invites = True
    fake.script["ended_after_polls"] = 1
    agent = client.create_agent("A", {"systemPrompt": "Confirm."})
    since = "2020-01-01T00:00:00Z"
    (call,) = client.list_calls(agent_id=agent["agentId"], from_date=since)
    assert fake.last("GET", "/api/calls")["query"] == {
        "agentIds": agent["agentId"], "fromDate": since, "pageSize": "50"}
    assert call["agentId"] == agent["agentId"]
    assert client.list_calls(agent_id=agent["agentId"], from_date="2999-01-01T00:00:00Z") == []
    assert client.get_call(call["callId"])["ended"] is None       # first poll: still live
    ended = client.get_call(call["callId"])
    assert ended["endReason"] == "hangup"
    text = ultravox_mapping.transcript(client.messages(call["callId"]))
    assert text == "Agent: Hi, this is Sarah from Downtown Dental.\nUser: Yes, this is John."
    assert ultravox_mapping.call_seconds(ended) == 12.0


def test_messages_follow_pagination(client, fake):
    agent = fake.add_agent("A")
    call = fake._invite_call(agent["agentId"])
    turns = [{"role": "MESSAGE_ROLE_AGENT" if i % 2 == 0 else "MESSAGE_ROLE_USER",
              "text": f"turn {i}"} for i in range(7)]
    fake.end_call(call["callId"], messages=turns)
    got = client.messages(call["callId"], page_size=3)
    assert [m["text"] for m in got] == [f"turn {i}" for i in range(7)]
    assert fake.count("GET", f"/api/calls/{call['callId']}/messages") == 3


def test_sip_configuration_and_registrations(client, fake):
    assert client.get_sip()["domain"] == fake.sip["domain"]
    made = client.update_sip({"allowedCidrRanges": ["203.0.113.7/32"], "allowAllAgents": True})
    assert made["allowedCidrRanges"] == ["203.0.113.7/32"] and made["allowAllAgents"] is True
    with pytest.raises(UltravoxError) as info:
        client.update_sip({"allowedCidrRanges": ["2001:db8::/32"]})
    assert info.value.code == "ultravox-rejected"
    reg = client.create_sip_registration({"username": "uv", "password": "pw",
                                          "proxy": "pbx.example.com"})
    assert "password" not in reg and reg["username"] == "uv"
    assert [r["registrationId"] for r in client.sip_registrations()] == [reg["registrationId"]]


def test_find_agent_matches_the_exact_name(client, fake):
    fake.add_agent("trunx-call-abc1")
    fake.add_agent("trunx-call-abc")
    assert client.find_agent("trunx-call-abc")["name"] == "trunx-call-abc"
    assert client.find_agent("trunx-call-zzz") is None


def test_the_fake_refuses_what_ultravox_refuses(client):
    with pytest.raises(UltravoxError) as info:   # an inline tool with no implementation
        client.create_agent("t", {"systemPrompt": "p", "selectedTools": [
            {"temporaryTool": {"modelToolName": "x", "description": "d"}}]})
    assert "implementation" in info.value.message


def test_wrong_key_is_unauthorized_and_never_echoes_the_key(fake):
    with Ultravox("not-the-key", fake.base_url) as c, pytest.raises(UltravoxError) as info:
        c.get_agent("x")
    err = info.value
    assert (err.code, status_for(err), err.remote_status) == ("ultravox-unauthorized", 502, 401)
    assert "not-the-key" not in str(err) and "not-the-key" not in str(err.summary())
    assert "ULTRAVOX_API_KEY" in err.message


def test_remote_validation_errors_are_422_with_the_remote_message(client):
    with pytest.raises(UltravoxError) as info:
        client.create_agent("bad name!", {"systemPrompt": "p"})
    assert info.value.code == "ultravox-rejected" and status_for(info.value) == 422
    assert "name" in info.value.message
    with pytest.raises(UltravoxError) as info:
        client.create_agent("ok", {"systemPrompt": "p", "voice": "NoSuchVoice"})
    assert "NoSuchVoice" in info.value.message


@pytest.mark.parametrize("status,code,ours", [
    (500, "ultravox-error", 502), (503, "ultravox-error", 502),
    (429, "ultravox-rate-limited", 503),
])
def test_remote_failures(client, fake, status, code, ours):
    fake.fail("GET", "/api/agents", status, {"detail": "boom"})
    with pytest.raises(UltravoxError) as info:
        client.get_agent("x")
    got = (info.value.code, status_for(info.value), info.value.remote_status)
    assert got == (code, ours, status)


def test_remote_echoing_the_key_is_redacted(client, fake):
    fake.fail("GET", "/api/agents", 400, {"detail": f"bad key {KEY} used"})
    with pytest.raises(UltravoxError) as info:
        client.get_agent("x")
    assert KEY not in info.value.message and "***" in info.value.message


def test_timeout(fake):
    fake.delay = 1.0
    with Ultravox(KEY, fake.base_url, timeout=(0.5, 0.2)) as c, \
            pytest.raises(UltravoxError) as info:
        c.get_agent("x")
    assert (info.value.code, status_for(info.value)) == ("ultravox-timeout", 504)


def test_unreachable():
    from devtools.stack import free_port

    with Ultravox(KEY, f"http://127.0.0.1:{free_port()}") as c, \
            pytest.raises(UltravoxError) as info:
        c.get_call("x")
    assert (info.value.code, status_for(info.value)) == ("ultravox-unreachable", 503)


def test_ids_are_path_segments(client, fake):
    with pytest.raises(UltravoxError):
        client.get_agent("../calls")
    assert fake.last("GET", "/api/")["path"] == "/api/agents/..%2Fcalls"


def test_trunx_ultravox_sip_show_and_allowlist_from_the_command_line(fake, tmp_path, capsys):
    import json

    from trunx import cli

    ini = tmp_path / "trunx.ini"
    ini.write_text(f"[trunx]\ndata_dir = {tmp_path}\nultravox_api_key = {KEY}\n"
                   f"ultravox_base_url = {fake.base_url}\n")
    assert cli.main(["--config", str(ini), "ultravox", "sip", "allowlist",
                     "203.0.113.7"]) == 0
    assert json.loads(capsys.readouterr().out)["allowedCidrRanges"] == ["203.0.113.7/32"]
    assert fake.last("PATCH", "/api/sip")["json"] == {
        "allowedCidrRanges": ["203.0.113.7/32"], "allowAllAgents": True}
    assert cli.main(["--config", str(ini), "ultravox", "sip", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sip"]["domain"] == fake.sip["domain"]
    assert shown["trunx"] == {"mode": "allowlist", "endpoint": "carrier"}
    assert cli.main(["--config", str(ini), "ultravox", "sip", "allowlist", "::1"]) == 1
    assert "IPv4" in capsys.readouterr().err
