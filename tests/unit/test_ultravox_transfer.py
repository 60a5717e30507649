"""An agent's coldTransfer targets (trunx.ultravox_transfer): the forms users write, the
SIP user each becomes (the `target` override of Ultravox's built-in coldTransfer), and
back from a REFER's user."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from trunx import ultravox_mapping
from trunx import ultravox_transfer as t


@pytest.mark.parametrize(("written", "parsed", "user"), [
    ("+14155550100", "+14155550100", "+14155550100"),
    ("ivr:sales#menu", ("sales", "menu"), "ivr~sales~menu"),
    ("ivr:qualify-business#has_business.2", ("qualify-business", "has_business.2"),
     "ivr~qualify-business~has_business.2"),
])
def test_targets_round_trip(written, parsed, user):
    assert t.parse(written) == parsed
    assert t.sip_user(written) == user
    assert t.from_sip_user(user) == parsed
    assert t.written(parsed) == written


@pytest.mark.parametrize("value", [
    None, 5, "", "14155550100", "+1415", "ivr:sales", "ivr:#menu", "ivr:sales#", "sales#menu",
    "ivr:sa les#menu", "ivr:sales#menu\n", "ivr:a#b#c", "ivr:" + "x" * 65 + "#menu",
    "ivr~sales~menu",                # the wire form is not what users write
])
def test_other_targets_are_none(value):
    assert t.parse(value) is None


@pytest.mark.parametrize("user", [
    "", "ivr:sales#menu", "ivr~sales", "ivr~sales~menu~x", "sales-desk", "+1415",
    "ivr~sa les~menu", "ivr~sales~menu\n",
])
def test_refer_users_of_other_shapes_are_none(user):
    assert t.from_sip_user(user) is None


def test_one_target_is_the_builtin_tool_with_its_target():
    assert t.selected_tools(["+14155550100"]) == [
        {"toolName": "coldTransfer", "parameterOverrides": {"target": "+14155550100"}}]


def test_several_targets_are_named_apart_and_described():
    tools = t.selected_tools(["+14155550100", "ivr:sales#menu"])
    assert [x["nameOverride"] for x in tools] == ["coldTransfer1", "coldTransfer2"]
    assert [x["parameterOverrides"]["target"] for x in tools] == ["+14155550100",
                                                                  "ivr~sales~menu"]
    assert "'sales'" in tools[1]["descriptionOverride"]


def test_an_agents_transfers_replace_a_bare_cold_transfer():
    agent = SimpleNamespace(prompt="p", language="en", max_duration=300, first_message=None,
                            voice=None, tool_ids=["hangUp", "coldTransfer"], knowledge_ids=[],
                            transfers=["ivr:sales#menu"])
    assert ultravox_mapping.call_template(agent)["selectedTools"] == [
        {"toolName": "hangUp"},
        {"toolName": "coldTransfer", "parameterOverrides": {"target": "ivr~sales~menu"}}]
    agent.transfers = []
    assert ultravox_mapping.call_template(agent)["selectedTools"] == [
        {"toolName": "hangUp"}, {"toolName": "coldTransfer"}]
