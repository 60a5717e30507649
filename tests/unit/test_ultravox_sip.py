"""trunx.ultravox_sip and trunx.ultravox_tools: the SIP dial targets, the admission bodies,
the PJSIP user for a registration, and what Ultravox accepts in tools, metadata and prompts."""
from __future__ import annotations

import pytest

from admin_api.errors import status_for
from trunx import ultravox_sip, ultravox_tools
from trunx.errors import InvalidInput

AGENT = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def test_dial_targets_for_both_admissions():
    assert ultravox_sip.dial_target("allowlist", "carrier", AGENT, "acct.sip.ultravox.ai") == \
        f"PJSIP/carrier/sip:agent_{AGENT}@acct.sip.ultravox.ai"
    assert ultravox_sip.dial_target("allowlist", "uv", AGENT, "127.0.0.1:5099") == \
        f"PJSIP/uv/sip:agent_{AGENT}@127.0.0.1:5099"
    assert ultravox_sip.dial_target("register", "ultravox", AGENT, None) == \
        f"PJSIP/agent_{AGENT}@ultravox"


@pytest.mark.parametrize("mode,endpoint,agent,domain,code", [
    ("allowlist", "carrier", "not-a-uuid", "d.example", "bad-agent-id"),
    ("allowlist", "carrier", AGENT + ",x", "d.example", "bad-agent-id"),
    ("allowlist", "carrier", AGENT, "d.example,evil", "bad-sip-domain"),
    ("allowlist", "carrier", AGENT, "a b", "bad-sip-domain"),
    ("allowlist", "carrier", AGENT, "${EXTEN}", "bad-sip-domain"),
    ("allowlist", "carrier", AGENT, None, "bad-sip-domain"),
    ("allowlist", "a/b", AGENT, "d.example", "bad-sip-endpoint"),
    ("register", "x&PJSIP/y", AGENT, None, "bad-sip-endpoint"),
    ("joinurl", "carrier", AGENT, "d.example", "bad-sip-mode"),
])
def test_nothing_unchecked_reaches_the_dial(mode, endpoint, agent, domain, code):
    with pytest.raises(ultravox_sip.SipSetupError) as err:
        ultravox_sip.dial_target(mode, endpoint, agent, domain)
    assert err.value.code == code and status_for(err.value) == 422


def test_the_allowlist_keeps_what_the_account_has_and_adds_ours_once():
    body = ultravox_sip.allowlist_body({"allowedCidrRanges": ["10.0.0.0/8"]},
                                       ["203.0.113.7", "203.0.113.7/32", "198.51.100.0/24"])
    assert body == {"allowedCidrRanges": ["10.0.0.0/8", "203.0.113.7/32", "198.51.100.0/24"],
                    "allowAllAgents": True}
    for bad in ("2001:db8::1", "not-an-address", "300.1.1.1"):
        with pytest.raises(ultravox_sip.SipSetupError):
            ultravox_sip.allowlist_body({}, [bad])


def test_the_pjsip_user_ultravox_registers_as():
    conf = ultravox_sip.pjsip_registration_conf("ultravox", "s3cret-pw")
    assert "[ultravox]\ntype = endpoint" in conf and "auth = ultravox-auth" in conf
    assert "[ultravox]\ntype = aor\nmax_contacts = 1" in conf
    assert "password = s3cret-pw" in conf
    for user, password in (("bad user", "pw"), ("ok", "pw\n[evil]"), ("ok", "")):
        with pytest.raises(ultravox_sip.SipSetupError):
            ultravox_sip.pjsip_registration_conf(user, password)
    assert ultravox_sip.registration_body("ultravox", "pw", "pbx.example.com:5060") == {
        "username": "ultravox", "password": "pw", "proxy": "pbx.example.com:5060"}


@pytest.mark.parametrize("tool_id,ok", [
    (AGENT, True), ("hangUp", True), ("coldTransfer", True), ("leaveVoicemail", True),
    ("playDtmfSounds", True), ("hangup", False), ("tool-1", False), ("", False), (7, False),
])
def test_tool_ids_are_uuids_or_built_in_names(tool_id, ok):
    if ok:
        assert ultravox_tools.check_tool_id("tool_ids[0]", tool_id) == tool_id
    else:
        with pytest.raises(InvalidInput) as err:
            ultravox_tools.check_tool_id("tool_ids[0]", tool_id)
        assert err.value.details[0]["field"] == "tool_ids[0]"
    if ok:
        ref = ultravox_tools.reference(tool_id)
        assert ref == ({"toolId": AGENT} if tool_id == AGENT else {"toolName": tool_id})


def test_reserved_metadata_keys_and_template_variables():
    ultravox_tools.check_metadata_keys("metadata", {"crm": "1", "ultra": "2"})
    with pytest.raises(InvalidInput) as err:
        ultravox_tools.check_metadata_keys("metadata", {"Ultravox.sip": "x"})
    assert err.value.details[0]["code"] == "reserved-key"
    assert ultravox_tools.template_variables("Hi {{ name }}, {{did}} {{name}} {x}") == \
        ["name", "did"]
    ultravox_tools.check_template("prompt", "no variables { here }")
    ultravox_tools.check_template("prompt", "Hi {{name}}", supplied=("name",))
    with pytest.raises(InvalidInput) as err:
        ultravox_tools.check_template("prompt", "Hi {{name}}")
    assert err.value.details[0]["code"] == "unknown-template-variable"


def test_the_outgoing_medium_and_meeting_point_take_only_what_trunx_made():
    token = ultravox_sip.new_token()
    assert ultravox_sip.meet_target(token) == f"Local/{token}@trunx-ai-meet"
    assert ultravox_sip.outgoing_medium(token, "pbx.example.com:5070", from_user="+1415") == \
        {"sip": {"outgoing": {"to": f"sip:{token}@pbx.example.com:5070", "from": "+1415"}}}
    medium = ultravox_sip.outgoing_medium(token, "203.0.113.7", username="u", password="p")
    assert medium["sip"]["outgoing"]["username"] == "u"
    for bad in ("uvXYZ", "s@trunx-ai-meet", token + ",m", ""):
        with pytest.raises(ultravox_sip.SipSetupError):
            ultravox_sip.meet_target(bad)
    with pytest.raises(ultravox_sip.SipSetupError):
        ultravox_sip.outgoing_medium(token, "pbx.example.com;transport=tcp")


def test_the_outgoing_pjsip_user_is_found_by_its_digest_username():
    conf = ultravox_sip.pjsip_outgoing_conf("uv-out", "pw")
    assert "identify_by = auth_username" in conf and "context = trunx-ultravox-out" in conf
    with pytest.raises(ultravox_sip.SipSetupError):
        ultravox_sip.pjsip_outgoing_conf("uv-out", "pw\n[evil]")


def test_template_context_carries_the_ivr_path_and_every_variable():
    from trunx import ultravox_mapping
    ivr = {"id": "c", "from_number": "+12025550177", "to_number": "+19495550169",
           "metadata": {"trunxSource": "ivr", "trunxDid": "+19495550169",
                        "trunxCaller": "+12025550177", "trunxIvr": "sales v2",
                        "trunxPath": "menu>sales", "trunxDigits": "1,2"}}
    context = ultravox_mapping.template_context(ivr)
    assert tuple(context) == ultravox_tools.TEMPLATE_VARIABLES
    assert (context["keys"], context["nodes"], context["ivr"]) == ("1,2", "menu>sales",
                                                                  "sales v2")
    outbound = ultravox_mapping.template_context(
        {"from_number": "+1415", "to_number": "+1949", "metadata": {"trunxDigits": "9"}})
    assert outbound["keys"] == "" and outbound["to"] == "+1949"   # only the IVR's own
    assert ultravox_mapping.uses_variables({"systemPrompt": "x", "firstSpeakerSettings":
                                            {"agent": {"text": "Hi {{caller}}"}}})
    assert not ultravox_mapping.uses_variables({"systemPrompt": "{ not one }"})
