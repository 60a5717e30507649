"""Table tests of trunx.ivr.tree: what validate() accepts and refuses (with which field and
code). What compilation makes of a valid tree is tests/unit/test_ivr_program.py."""
from __future__ import annotations

import pytest

from trunx.ivr.tree import MAX_NODES, audio_refs, validate

SEED = {"nodes": {
    "welcome": {"audio": "welcome.wav", "gather": {"1": "has_business", "9": "dnc"},
                "timeout_node": "welcome"},
    "has_business": {"audio": "business_check.wav",
                     "gather": {"1": "transfer_ai", "2": "unqualified"}},
    "transfer_ai": {"action": "transfer"},
    "unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
    "dnc": {"action": "suppress"},
}}


def one(node: dict, **more) -> dict:
    """A tree whose entry is `node`, with a hangup node `end` to point at."""
    return {"nodes": {"n": node, "end": {"action": "hangup"}}, **more}


VALID = [
    ("seed page tree", SEED),
    ("single hangup", {"nodes": {"bye": {"action": "hangup"}}}),
    ("all gather options", one({"audio": "menu", "gather": {"1": "end", "*": "n", "#": "end",
                                                            "123": "end"},
                                "timeout": 2.5, "max_tries": 2, "max_digits": 3,
                                "timeout_node": "end", "invalid_node": "n",
                                "invalid_audio": "custom/invalid"})),
    ("transfer to number", one({"action": "transfer", "to": "+14155550100", "timeout": 20})),
    ("transfer to agent", one({"action": "transfer", "agent": "agent-7"})),
    ("suppress with audio", one({"action": "suppress", "audio": "aud_0123456789abcdef"})),
    ("explicit start", one({"action": "hangup"}, start="end")),
]


@pytest.mark.parametrize("tree", [v[1] for v in VALID], ids=[v[0] for v in VALID])
def test_valid(tree):
    checked = validate(tree)
    assert checked.ok, checked.problems


INVALID = [
    ("not an object", [], "", "invalid-type"),
    ("no nodes", {}, "nodes", "required"),
    ("empty nodes", {"nodes": {}}, "nodes", "required"),
    ("nodes not object", {"nodes": ["a"]}, "nodes", "required"),
    ("too many nodes", {"nodes": {f"n{i}": {"action": "hangup"} for i in range(MAX_NODES + 1)}},
     "nodes", "too-many"),
    ("bad node name", {"nodes": {"has space": {"action": "hangup"}}}, "nodes.has space",
     "invalid-name"),
    ("node not object", {"nodes": {"a": "hangup"}}, "nodes.a", "invalid-type"),
    ("neither gather nor action", one({"audio": "x"}), "nodes.n", "invalid-node"),
    ("both gather and action", one({"audio": "x", "gather": {"1": "end"}, "action": "hangup"}),
     "nodes.n", "ambiguous-node"),
    ("gather without audio", one({"gather": {"1": "end"}}), "nodes.n.audio", "required"),
    ("gather empty", one({"audio": "x", "gather": {}}), "nodes.n.gather", "required"),
    ("unknown target", one({"audio": "x", "gather": {"1": "nowhere"}}), "nodes.n.gather.1",
     "unknown-node"),
    ("bad digit key", one({"audio": "x", "gather": {"a": "end"}}), "nodes.n.gather.a",
     "invalid-dtmf"),
    ("digit key too long", one({"audio": "x", "gather": {"12345678901": "end"}}),
     "nodes.n.gather.12345678901", "invalid-dtmf"),
    ("unknown timeout_node", one({"audio": "x", "gather": {"1": "end"}, "timeout_node": "zz"}),
     "nodes.n.timeout_node", "unknown-node"),
    ("unknown invalid_node", one({"audio": "x", "gather": {"1": "end"}, "invalid_node": 3}),
     "nodes.n.invalid_node", "unknown-node"),
    ("timeout too small", one({"audio": "x", "gather": {"1": "end"}, "timeout": 0.1}),
     "nodes.n.timeout", "out-of-range"),
    ("max_tries not int", one({"audio": "x", "gather": {"1": "end"}, "max_tries": 1.5}),
     "nodes.n.max_tries", "out-of-range"),
    ("max_digits bool", one({"audio": "x", "gather": {"1": "end"}, "max_digits": True}),
     "nodes.n.max_digits", "out-of-range"),
    ("gather unknown field", one({"audio": "x", "gather": {"1": "end"}, "tiemout": 3}),
     "nodes.n.tiemout", "unknown-field"),
    ("action typo", one({"action": "hangpu"}), "nodes.n.action", "invalid-action"),
    ("action unknown field", one({"action": "hangup", "digits": "1"}), "nodes.n.digits",
     "unknown-field"),
    ("audio with spaces", one({"action": "hangup", "audio": "my file.wav"}), "nodes.n.audio",
     "invalid-audio"),
    ("audio path traversal", one({"action": "hangup", "audio": "../../etc/passwd"}),
     "nodes.n.audio", "invalid-audio"),
    ("audio newline", one({"action": "hangup", "audio": "x\nEXEC Dial"}), "nodes.n.audio",
     "invalid-audio"),
    ("invalid_audio not string", one({"audio": "x", "gather": {"1": "end"},
                                      "invalid_audio": 5}),
     "nodes.n.invalid_audio", "invalid-audio"),
    ("to not E.164", one({"action": "transfer", "to": "4155550100"}), "nodes.n.to",
     "invalid-number"),
    ("to on hangup", one({"action": "hangup", "to": "+14155550100"}), "nodes.n.to",
     "invalid-number"),
    ("agent with quote", one({"action": "transfer", "agent": 'a"b'}), "nodes.n.agent",
     "invalid-agent"),
    ("dial string in tree", one({"action": "transfer", "dial": "PJSIP/x"}), "nodes.n.dial",
     "not-allowed"),
    ("transfer timeout too long", one({"action": "transfer", "timeout": 301}),
     "nodes.n.timeout", "out-of-range"),
    ("unknown start", one({"action": "hangup"}, start="missing"), "start", "unknown-node"),
]


@pytest.mark.parametrize("tree,field,code", [i[1:] for i in INVALID],
                         ids=[i[0] for i in INVALID])
def test_invalid(tree, field, code):
    checked = validate(tree)
    assert not checked.ok
    assert (field, code) in [(p.field, p.code) for p in checked.problems]


def test_every_problem_is_reported_at_once():
    tree = {"nodes": {"a": {"action": "hangpu"}, "b": {"audio": "x", "gather": {"q": "zz"}}}}
    found = {(p.field, p.code) for p in validate(tree).problems}
    assert found == {("nodes.a.action", "invalid-action"), ("nodes.b.gather.q", "invalid-dtmf"),
                     ("nodes.b.gather.q", "unknown-node")}


@pytest.mark.parametrize("tree,entry", [
    (SEED, "welcome"),
    (one({"action": "hangup"}), "n"),
    (one({"action": "hangup"}, start="end"), "end"),
])
def test_entry(tree, entry):
    assert validate(tree).entry == entry


def test_unreachable_nodes_are_warnings_not_problems():
    tree = {"nodes": {"a": {"audio": "x", "gather": {"1": "b"}}, "b": {"action": "hangup"},
                      "lost": {"action": "hangup"}}}
    checked = validate(tree)
    assert checked.ok
    assert [(w.field, w.code) for w in checked.warnings] == [("nodes.lost", "unreachable")]
    # timeout_node and invalid_node count as ways in
    tree["nodes"]["a"]["invalid_node"] = "lost"
    assert validate(tree).warnings == []


def test_audio_refs():
    assert audio_refs(SEED) == {"welcome.wav", "business_check.wav", "not_qualified.wav"}
    assert audio_refs(one({"audio": "m", "gather": {"1": "end"},
                           "invalid_audio": "inv"})) == {"m", "inv"}

