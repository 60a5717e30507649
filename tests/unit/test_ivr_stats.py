"""trunx.ivr.stats on hand-written paths: each call's walk counted once per call, equal
walks folded together, shares of a prompt heard, hang-ups in the last node."""
from __future__ import annotations

import json

from trunx.ivr.program import compile_program
from trunx.ivr.stats import aggregate_reduced, edge_counts, reduce_path
from trunx.ivr.tree import validate

TREE = {"nodes": {"menu": {"audio": "m", "gather": {"1": "end", "2": "menu"}},
                  "end": {"action": "hangup"}}}
PROGRAM = compile_program(validate(TREE), lambda ref: ref, gather_timeout=5,
                          gather_max_tries=3, account="a", ivr_id="i", version=1)


def step(node, event, **data):
    return {"node": node, "event": event, "t": 0.1, **data}


REPLAY_THEN_1 = [step("menu", "enter"), step("menu", "prompt", file="m", endpos=8000),
                 step("menu", "digits", digits="2"), step("menu", "enter"),
                 step("menu", "prompt", file="m", endpos=16000),
                 step("menu", "timeout"), step("menu", "enter"),
                 step("menu", "prompt", file="m", endpos=4000),
                 step("menu", "digits", digits="1"), step("end", "enter"),
                 step("end", "hangup")]
HUNG_UP = [step("menu", "enter"), step("menu", "prompt", file="m", endpos=2000)]


def test_walks_edges_shares_and_hangups():
    rows = [(json.dumps(REPLAY_THEN_1), "hangup")] * 2 + [(HUNG_UP, "caller-hangup"),
                                                        ("", None), ([], None)]
    reduced = [r for r in (reduce_path(p, o) for p, o in rows) if r is not None]
    out = aggregate_reduced(reduced, PROGRAM, lambda file: 2.0)   # m is 2 s: 16000 samples
    menu, end = out["nodes"]
    assert out["calls"] == 3 and out["outcomes"] == {"hangup": 2, "caller-hangup": 1}
    assert (menu["entered"], menu["visits"], menu["timeouts"], menu["hangups"]) == (3, 7, 2, 1)
    assert menu["keys"] == {"1": 2, "2": 2}
    assert menu["exits"] == {"menu": {"2": 2, "timeout": 2}, "end": {"1": 2}}
    # shares heard: 0.5, 1, 0.25 twice each, and 0.125: the median of seven is 0.5
    assert menu["heardMedian"] == 0.5
    assert (end["entered"], end["visits"]) == (2, 2)
    assert edge_counts(out) == {("menu", "1"): 2, ("menu", "2"): 2, ("menu", "timeout"): 2}
    assert out["funnel"] == [{"node": "menu", "calls": 3, "share": 1.0},
                             {"node": "end", "action": "hangup", "calls": 2, "share": 0.667}]


def test_a_sound_with_no_stored_length_is_measured_by_the_longest_heard():
    reduced = [reduce_path(REPLAY_THEN_1, "hangup")]
    (menu, _) = aggregate_reduced(reduced, PROGRAM)["nodes"]
    assert menu["heardMedian"] == 0.5          # 8000 of the longest, 16000
