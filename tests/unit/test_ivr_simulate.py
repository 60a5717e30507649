"""trunx.ivr.simulate: the engine's state machine walked with a designer's inputs, no
channel, no database."""
from __future__ import annotations

import pytest

from trunx.errors import InvalidInput
from trunx.ivr import events, simulate
from trunx.ivr.program import compile_program
from trunx.ivr.tree import validate

SETTINGS = events.Settings(trunk_endpoint="carrier", transfer_dial="", transfer_timeout=30,
                           fallback_audio="fallback", polite_hangup_audio="goodbye",
                           agents=False)
TREE = {"nodes": {
    "menu": {"audio": "s/menu", "gather": {"1": "sales", "12": "deep", "9": "dnc"},
             "timeout_node": "menu", "max_tries": 2, "invalid_audio": "s/oops"},
    "sales": {"action": "transfer", "to": "+19495550101"},
    "deep": {"action": "transfer", "agent": "ag-1"},
    "dnc": {"action": "suppress"},
}}
PROGRAM = compile_program(validate(TREE), lambda ref: ref, gather_timeout=5.0,
                          gather_max_tries=3, account="acc", ivr_id="ivr", version=3)


def run(inputs, **world):
    return simulate.run(PROGRAM, SETTINGS, inputs,
                        simulate.World(seconds=lambda f: 2.0 if f == "s/menu" else None,
                                       **world))


def test_a_prefix_key_waits_for_the_rest_then_times_out_to_the_shorter_key():
    out = run(["1"])                     # "1" is complete only when no "12" follows
    assert [(p["event"], p.get("digits")) for p in out["path"] if p["node"] == "menu"] == [
        ("enter", None), ("prompt", None), ("digits", "1")]
    assert out["path"][1]["endpos"] == 16000          # 2 s at 8 kHz, played whole
    assert out["outcome"] == "transferred" and out["assumed"] == ["the transfer is answered"]
    assert out["path"][-2]["dial"] == "PJSIP/+19495550101@carrier"


def test_two_keys_reach_the_longer_key_and_an_unconfigured_agent_is_refused():
    out = run(["12"])
    assert out["nodes"][0]["digits"] == "12"
    assert (out["outcome"], out["reason"]) == ("transfer-failed", "ultravox-not-configured")


def test_invalid_then_timeout_ends_at_max_tries_and_keys_past_a_complete_key_drop():
    out = run(["5", "timeout", "1"])
    assert [v.get("result") for v in out["nodes"]] == ["invalid", "timeout"]
    assert out["outcome"] == "max-tries" and out["unusedInputs"] == ["1"]
    assert run(["9#"])["outcome"] == "suppressed"


def test_a_suppressed_transfer_target_and_the_inputs_running_out():
    out = run(["1"], suppressed=lambda number: number == "+19495550101")
    assert (out["outcome"], out["reason"]) == ("transfer-failed", "number-suppressed")
    out = run([])
    assert out["outcome"] == "caller-hangup" and out["nodes"] == [
        {"node": "menu", "type": "gather", "prompt": {"audio": "menu", "seconds": 2.0},
         "heard": True}]


@pytest.mark.parametrize(("inputs", "field"), [
    ("1", "inputs"), (["1", 2], "inputs[1]"), (["a"], "inputs[0]"),
    (["1" * 11], "inputs[0]"), (["1"] * 101, "inputs")])
def test_inputs_are_checked(inputs, field):
    with pytest.raises(InvalidInput) as caught:
        simulate.check_inputs(inputs)
    assert caught.value.details[0]["field"] == field
