"""An inbound call's IVR path in its public form, one step a dict, as the API lists it and
the `call.completed` webhook carries it (both processes share this one form):

    {"node": "welcome", "event": "prompt", "at": 0.04, "audio": "aud_...",
     "heard": 2.1, "heardShare": 0.62, "bargeIn": true}
    {"node": "welcome", "event": "digits", "at": 2.15, "digits": "1"}

The engine stores steps as agi_server/calls/record.py makes them ({node, event, t, ...}).
`at` is seconds from the answer; `heard` how much of a prompt the caller heard (Asterisk's
end position, 8,000 samples a second); `heardShare` that part of the prompt's whole length,
when the prompt is one of the account's audio assets (`durations`, by asset id).
"""
from __future__ import annotations

import os
import re

SAMPLE_RATE = 8000       # STREAM FILE's endpos counts 8 kHz samples (docs/architecture.md)
PLAYED_OUT_SLACK = 0.05  # s: a prompt heard to within this of its length played out
_ASSET = re.compile(r"^aud_[0-9a-f]{16}$")
# stored keys shown under another name, or not at all (the file is a path on the Asterisk
# host: the asset id or sound name says the same without it)
_RENAMED = {"t": "at", "barge_in": "bargeIn", "dial_status": "dialStatus",
            "ai_status": "aiStatus", "moved_to": "movedTo"}
_HIDDEN = {"file", "endpos"}


def asset_ids(paths) -> set[str]:
    """The audio asset ids the prompts of these paths played."""
    names = {os.path.basename(s.get("file") or "") for path in paths for s in path or []
             if s.get("file")}
    return {n for n in names if _ASSET.match(n)}


def step_json(step: dict, durations: dict[str, float]) -> dict:
    out = {_RENAMED.get(k, k): v for k, v in step.items() if k not in _HIDDEN}
    if "file" in step:
        name = os.path.basename(step["file"] or "")
        out["audio"] = name
        if step.get("endpos") is not None:
            heard = round(step["endpos"] / SAMPLE_RATE, 3)
            out["heard"] = heard
            total = durations.get(name)
            if total:
                out["heardShare"] = round(min(1.0, heard / total), 3)
                if step.get("event") == "prompt" and "barge_in" not in step:
                    # a question's step (GET OPTION) has no barge_in of its own: its reply
                    # does not say whether the key came in the prompt or the wait after it.
                    # A prompt that played out reports its whole length.
                    out["bargeIn"] = heard < total - PLAYED_OUT_SLACK
    return out


def path_json(path: list[dict] | None, durations: dict[str, float]) -> list[dict]:
    return [step_json(s, durations) for s in path or []]


def asset_durations(account: str | None, paths) -> dict[str, float]:
    """Blocking (a database read): lengths of the account's assets the paths played."""
    from trunx.models import AudioAsset

    ids = asset_ids(paths)
    if not ids or account is None:
        return {}
    query = AudioAsset.select(AudioAsset.id, AudioAsset.duration_seconds).where(
        AudioAsset.account == account, AudioAsset.id.in_(sorted(ids)))
    return {a.id: a.duration_seconds for a in query}
