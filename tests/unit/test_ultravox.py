"""trunx.ultravox: the pure mapping between trunx's fields and Ultravox's shapes."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from admin_api.errors import status_for
from trunx import ultravox, ultravox_mapping

TOOL = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def agent(**kw):
    base = dict(prompt="Confirm the appointment.", voice="Mark", first_message="Hi there.",
                language="en", max_duration=300, tool_ids=[], knowledge_ids=[])
    return SimpleNamespace(**{**base, **kw})


def test_call_template_maps_every_agent_field():
    t = ultravox_mapping.call_template(agent(tool_ids=[TOOL, "hangUp"], knowledge_ids=["c1"]))
    assert t == {
        "systemPrompt": "Confirm the appointment.",
        "languageHint": "en",
        "maxDuration": "300s",
        "firstSpeakerSettings": {"agent": {"text": "Hi there."}},
        "selectedTools": [
            {"toolId": TOOL},
            {"toolName": "hangUp"},          # a built-in tool goes by name
            {"toolName": "queryCorpus",
             "parameterOverrides": {"corpus_id": "c1", "max_results": 5}},
        ],
        "voice": "Mark",
    }


def test_call_template_without_voice_or_first_message():
    t = ultravox_mapping.call_template(agent(voice=None, first_message=None, max_duration=90.5))
    assert "voice" not in t
    assert t["firstSpeakerSettings"] == {"agent": {}}
    assert t["maxDuration"] == "90.5s"


def test_several_knowledge_bases_get_distinct_tool_names():
    tools = ultravox_mapping.selected_tools([], ["a", "b"])
    assert [t["nameOverride"] for t in tools] == ["queryCorpus1", "queryCorpus2"]


@pytest.mark.parametrize("name,expected", [
    ("Appointment Confirmer", "Appointment_Confirmer"),
    ("  réception / front desk ", "r_ception_front_desk"),
    ("ok-name_1", "ok-name_1"),
    ("!!!", "agent"),
    ("x" * 80, "x" * 64),
])
def test_agent_name_fits_ultravox_alphabet(name, expected):
    assert ultravox_mapping.agent_name(name) == expected


@pytest.mark.parametrize("value,seconds", [
    ("300s", 300.0), ("1.5s", 1.5), (45, 45.0), (2.5, 2.5), ("300", 300.0), ("s", None),
    (True, None), (None, None), ("soon", None), ([], None), (0, None), (-5, None),
    ("1e9999s", None),
])
def test_parse_duration(value, seconds):
    assert ultravox_mapping.parse_duration(value) == seconds


def test_ai_template_from_the_seed_ai_fields():
    template = ultravox_mapping.ai_template({
        "systemPrompt": "Confirm.", "voice": "Mark", "firstSpeaker": "user",
        "temperature": 0.7, "maxDuration": "300s", "model": "fixie-ai/ultravox-70B",
        "tools": [{"modelToolName": "lookup", "description": "d",
                   "http": {"baseUrlPattern": "https://x.example/l", "httpMethod": "GET"}}],
        "toolIds": ["coldTransfer"]})
    assert template == {
        "systemPrompt": "Confirm.", "model": "fixie-ai/ultravox-70B", "voice": "Mark",
        "temperature": 0.7, "maxDuration": "300s", "firstSpeakerSettings": {"user": {}},
        "selectedTools": [{"toolName": "coldTransfer"}, {"temporaryTool": {
            "modelToolName": "lookup", "description": "d",
            "http": {"baseUrlPattern": "https://x.example/l", "httpMethod": "GET"}}}],
    }


def test_ai_template_defaults_and_a_bad_stored_duration():
    template = ultravox_mapping.ai_template({"systemPrompt": "x", "maxDuration": "later"},
                                            "also bad")
    assert template == {"systemPrompt": "x", "firstSpeakerSettings": {"agent": {}}}
    assert ultravox_mapping.ai_template({"systemPrompt": "x"}, 90)["maxDuration"] == "90s"


def test_a_managed_agent_name_follows_the_template():
    a = ultravox_mapping.managed_agent_name({"systemPrompt": "x"})
    assert a == ultravox_mapping.managed_agent_name({"systemPrompt": "x"})
    assert a != ultravox_mapping.managed_agent_name({"systemPrompt": "y"})
    assert len(a) <= 64 and a.startswith("trunx-call-")


def test_transcript_keeps_spoken_turns_only():
    messages = [
        {"role": "MESSAGE_ROLE_AGENT", "text": "Hi, this is Sarah."},
        {"role": "MESSAGE_ROLE_TOOL_CALL", "text": "{\"x\": 1}", "toolName": "lookup"},
        {"role": "MESSAGE_ROLE_TOOL_RESULT", "text": "ok"},
        {"role": "MESSAGE_ROLE_USER", "text": " Yes, this is John. "},
        {"role": "MESSAGE_ROLE_AGENT", "text": ""},
    ]
    assert ultravox_mapping.transcript(messages) == \
        "Agent: Hi, this is Sarah.\nUser: Yes, this is John."
    assert ultravox_mapping.transcript([]) == ""


def test_call_seconds_prefers_joined_to_ended():
    call = {"joined": "2026-03-09T15:30:00Z", "ended": "2026-03-09T15:32:20.500Z",
            "billedDuration": "99s"}
    assert ultravox_mapping.call_seconds(call) == 140.5
    assert ultravox_mapping.call_seconds({"billedDuration": "99s"}) == 99.0
    assert ultravox_mapping.call_seconds({}) is None


def test_ai_result_shape():
    assert ultravox_mapping.ai_result("ended", transcript="Agent: hi", seconds=140.4,
                              end_reason="hangup", ultravox_call_id="uv1") == {
        "status": "ended", "transcript": "Agent: hi", "duration": 140, "endReason": "hangup",
        "ultravoxCallId": "uv1"}


def test_no_key_is_a_clear_503_naming_the_setting():
    with pytest.raises(ultravox.UltravoxError) as info:
        ultravox.Ultravox("")
    assert info.value.code == "ultravox-not-configured"
    assert status_for(info.value) == 503
    assert "ULTRAVOX_API_KEY" in info.value.message


def test_repr_hides_the_key():
    assert "secret" not in repr(ultravox.Ultravox("secret-key-123"))
