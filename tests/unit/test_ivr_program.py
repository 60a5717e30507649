"""trunx.ivr.program: what a validated tree compiles to (defaults filled in, audio resolved,
the definition's field names), the stored form's round trip, and that a Program cannot be
changed once made."""
from __future__ import annotations

import dataclasses
import json

import pytest

from trunx.ivr.program import (
    FORMAT,
    Action,
    Gather,
    Program,
    compile_program,
    decode,
    encode,
)
from trunx.ivr.tree import validate

SEED = {"nodes": {
    "welcome": {"audio": "welcome.wav", "gather": {"1": "has_business", "9": "dnc"},
                "timeout_node": "welcome"},
    "has_business": {"audio": "business_check.wav",
                     "gather": {"1": "transfer_ai", "2": "unqualified"}},
    "transfer_ai": {"action": "transfer"},
    "unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
    "dnc": {"action": "suppress"},
}}
IDENT = {"account": "acc_1", "ivr_id": "qualify-business", "version": 3}


def build(tree, resolve=lambda ref: "/snd/" + ref.upper(), **ident) -> Program:
    return compile_program(validate(tree), resolve, gather_timeout=5.0, gather_max_tries=3,
                           **{**IDENT, **ident})


def one(node: dict) -> dict:
    return {"nodes": {"n": node, "end": {"action": "hangup"}}}


def test_compile_seed_tree():
    program = build(SEED)
    assert (program.account, program.ivr_id, program.version, program.entry) == \
        ("acc_1", "qualify-business", 3, "welcome")
    assert program.nodes["welcome"] == Gather(
        audio="/snd/WELCOME.WAV", gather={"1": "has_business", "9": "dnc"}, timeout=5.0,
        max_tries=3, max_digits=1, timeout_node="welcome")
    assert program.nodes["transfer_ai"] == Action(action="transfer")
    assert program.nodes["unqualified"] == Action(action="hangup", audio="/snd/NOT_QUALIFIED.WAV")
    assert list(program.nodes) == list(SEED["nodes"])      # the definition's order
    assert program.bare_transfers() == ["transfer_ai"]


def test_start_names_the_entry():
    assert build({**SEED, "start": "has_business"}).entry == "has_business"


COMPILE_CASES = [
    ("defaults filled in", {"audio": "m", "gather": {"1": "end"}},
     {"timeout": 5.0, "max_tries": 3, "max_digits": 1, "timeout_node": None,
      "invalid_node": None, "invalid_audio": None}),
    ("node values win over defaults",
     {"audio": "m", "gather": {"1": "end"}, "timeout": 2, "max_tries": 1, "max_digits": 4},
     {"timeout": 2.0, "max_tries": 1, "max_digits": 4}),
    ("max_digits from the longest key", {"audio": "m", "gather": {"1": "end", "123": "end"}},
     {"max_digits": 3}),
    ("invalid audio resolved", {"audio": "m", "gather": {"1": "end"}, "invalid_audio": "bad",
                                "invalid_node": "end"},
     {"invalid_audio": "<bad>", "invalid_node": "end", "audio": "<m>"}),
    ("transfer to a number", {"action": "transfer", "to": "+14155550100", "timeout": 9},
     {"to": "+14155550100", "agent": None, "timeout": 9.0, "bare": False}),
    ("transfer to an agent", {"action": "transfer", "agent": "ag-1"},
     {"agent": "ag-1", "to": None, "timeout": None, "bare": False}),
    ("bare transfer", {"action": "transfer"}, {"bare": True, "audio": None}),
    ("action audio resolved", {"action": "suppress", "audio": "bye"},
     {"audio": "<bye>", "bare": False}),
]


@pytest.mark.parametrize("node,expected", [c[1:] for c in COMPILE_CASES],
                         ids=[c[0] for c in COMPILE_CASES])
def test_compile_cases(node, expected):
    compiled = build(one(node), resolve=lambda ref: f"<{ref}>").nodes["n"]
    assert {k: getattr(compiled, k) for k in expected} == expected


def test_an_unvalidated_or_invalid_tree_is_not_compiled():
    checked = validate({"nodes": {"a": {"action": "dance"}}})
    with pytest.raises(ValueError):
        compile_program(checked, str, gather_timeout=5, gather_max_tries=3, **IDENT)


@pytest.mark.parametrize("keys,complete", [
    ({"1": "x"}, {"1": True, "2": False}),
    ({"1": "x", "12": "x"}, {"1": False, "12": True, "2": False}),
    ({"#": "x", "123": "x"}, {"#": True, "1": False, "12": False, "123": True}),
])
def test_a_key_is_complete_when_no_longer_key_extends_it(keys, complete):
    node = Gather(audio="m", gather=keys, timeout=1, max_tries=1, max_digits=3)
    assert {d: node.complete(d) for d in complete} == complete


def test_encode_decode_round_trip_through_json():
    tree = {"nodes": {**SEED["nodes"],
                      "menu": {"audio": "m", "gather": {"12": "end", "#": "welcome"},
                               "timeout": 2.5, "max_tries": 1, "invalid_audio": "inv",
                               "invalid_node": "end"},
                      "end": {"action": "transfer", "to": "+14155550100", "timeout": 12},
                      "ai": {"action": "transfer", "agent": "ag-1", "audio": "hold"}}}
    program = build(tree)
    stored = json.loads(json.dumps(encode(program)))
    assert stored["format"] == FORMAT
    assert stored["nodes"]["welcome"]["audio"] == "/snd/WELCOME.WAV"   # the field's own name
    assert "play" not in json.dumps(stored) and "kind" not in json.dumps(stored)
    again = decode(stored)
    assert again == program
    assert list(again.nodes) == list(program.nodes)
    assert encode(again) == stored


def test_format_1_is_still_read():
    """What trunx stored before the Program existed: a database written then resyncs."""
    legacy = {"entry": "welcome", "account": "acc_1", "ivr_id": "q", "version": 2, "nodes": {
        "welcome": {"play": "/snd/w", "kind": "gather", "gather": {"1": "bye"},
                    "timeout": 5.0, "max_tries": 3, "max_digits": 1, "timeout_node": None,
                    "invalid_node": None, "invalid_play": "/snd/inv"},
        "bye": {"play": None, "kind": "action", "action": "transfer", "to": "+14155550100",
                "timeout": 9}}}
    program = decode(legacy)
    assert program.nodes["welcome"] == Gather(audio="/snd/w", gather={"1": "bye"},
                                              timeout=5.0, max_tries=3, max_digits=1,
                                              invalid_audio="/snd/inv")
    assert program.nodes["bye"] == Action(action="transfer", to="+14155550100", timeout=9.0)
    assert decode(encode(program)) == program


@pytest.mark.parametrize("data", [
    {}, {"nodes": {}}, {"format": 2, "account": "a", "ivr_id": "i", "version": 1,
                        "entry": "x", "nodes": {}},
    {"format": 2, "account": "a", "ivr_id": "i", "version": 1, "entry": "x",
     "nodes": {"x": {"audio": "m"}}},
    {"format": 2, "account": "a", "ivr_id": "i", "version": 1, "entry": "x", "nodes": []},
])
def test_decode_refuses_what_is_not_a_program(data):
    with pytest.raises(ValueError):
        decode(data)


def test_a_program_is_frozen():
    program = build(SEED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.entry = "dnc"
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.nodes["welcome"].timeout = 1.0
    with pytest.raises(TypeError):
        program.nodes["x"] = Action(action="hangup")
    with pytest.raises(TypeError):
        program.nodes["welcome"].gather["5"] = "dnc"
    with pytest.raises(AttributeError):          # slots: no stray attributes either
        object.__setattr__(program, "extra", 1)
