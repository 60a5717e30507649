"""trunx.call_path: a stored step in its public form. A question's prompt step (GET OPTION)
has no barge_in of its own; for an asset, whether the prompt was cut short is read from
how much of it was heard."""
from __future__ import annotations

from trunx.call_path import step_json

ASSET = "aud_75f18e0cb5952c93"
FILE = f"/var/lib/trunx/sounds/{ASSET}"


def prompt(endpos: int, **data) -> dict:
    return {"node": "welcome", "event": "prompt", "t": 1.2, "file": FILE,
            "endpos": endpos, **data}


def test_a_question_cut_short_is_a_barge_in_and_one_heard_whole_is_not():
    durations = {ASSET: 2.0}
    cut = step_json(prompt(5760), durations)
    assert (cut["heard"], cut["heardShare"], cut["bargeIn"]) == (0.72, 0.36, True)
    whole = step_json(prompt(16000), durations)
    assert (whole["heardShare"], whole["bargeIn"]) == (1.0, False)
    assert "file" not in whole and "endpos" not in whole and whole["audio"] == ASSET


def test_a_stored_barge_in_is_kept_and_none_is_guessed_without_a_length():
    assert step_json(prompt(16000, barge_in=True), {ASSET: 2.0})["bargeIn"] is True
    assert "bargeIn" not in step_json(prompt(5760), {})
    played = step_json({**prompt(5760), "event": "played"}, {ASSET: 2.0})
    assert "bargeIn" not in played
