"""Answering-machine detection and voicemail drops on outbound calls: the API's fields.

Twilio's names, so clients port over:

    machineDetection                    "Enable" (decide as early as possible) or
                                        "DetectMessageEnd" (on a machine, wait for the end
                                        of its greeting); default with a voicemailDrop
    asyncAmd                            true (default): the call goes on while detection
                                        runs (actions go over AMI meanwhile); false: actions
                                        wait for the result. Either way a signed `call.amd`
                                        webhook carries it
    machineDetectionTimeout             seconds (2-60, default 30) before machine_end_other
    machineDetectionSpeechThreshold     ms of speech that make a machine (1000-6000, 2400)
    machineDetectionSpeechEndThreshold  ms of silence after speech that make a human
                                        (500-5000, 1200)
    machineDetectionSilenceTimeout      ms of nothing at all before "unknown" (2000-10000,
                                        5000)
    voicemailDrop                       an audio asset id of the account, or {text, voice?,
                                        engine?} rendered as POST /audio renders it; played
                                        from its first sample when the greeting ends

`amd_settings` checks them and stages the drop before the call is stored, so the engine
only ever plays a file that exists; it returns the Call row's `amd` JSON.
"""
from __future__ import annotations

from admin_api import assets
from trunx.errors import invalid
from trunx.media import asterisk_path, make_stager, pipeline
from trunx.models import AudioAsset

FIELDS = ("machineDetection", "asyncAmd", "machineDetectionTimeout",
          "machineDetectionSpeechThreshold", "machineDetectionSpeechEndThreshold",
          "machineDetectionSilenceTimeout", "voicemailDrop")
MODES = ("Enable", "DetectMessageEnd")
# field -> (the engine's key, lowest, highest, unit factor to ms)
TUNING = {
    "machineDetectionTimeout": ("timeout_ms", 2, 60, 1000),
    "machineDetectionSpeechThreshold": ("speech_threshold_ms", 1000, 6000, 1),
    "machineDetectionSpeechEndThreshold": ("speech_end_threshold_ms", 500, 5000, 1),
    "machineDetectionSilenceTimeout": ("silence_timeout_ms", 2000, 10000, 1),
}


def amd_settings(data: dict, account_id: str, config, *, agent_drop=None) -> dict | None:
    """The `amd` JSON for a call from the request's fields (None: no detection).
    `agent_drop` is an agent's own voicemail_drop, used when the request names none."""
    mode = data.get("machineDetection")
    drop = data.get("voicemailDrop", agent_drop)
    if mode is None and drop is None:
        stray = [f for f in FIELDS if f in data]
        if stray:
            raise invalid(stray[0], "requires-machine-detection",
                          f"{stray[0]} needs machineDetection (Enable or DetectMessageEnd)")
        return None
    if mode is None:
        mode = "DetectMessageEnd"
    if mode not in MODES:
        raise invalid("machineDetection", "invalid-value",
                      "machineDetection must be Enable or DetectMessageEnd")
    if drop is not None and mode != "DetectMessageEnd":
        raise invalid("voicemailDrop", "requires-detect-message-end",
                      "a voicemailDrop plays when the greeting ends: use machineDetection "
                      "DetectMessageEnd")
    async_amd = data.get("asyncAmd", True)
    if not isinstance(async_amd, bool):
        raise invalid("asyncAmd", "invalid-type", "asyncAmd must be true or false")
    out = {"mode": mode, "async": async_amd}
    for field, (key, low, high, factor) in TUNING.items():
        value = data.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise invalid(field, "out-of-range", f"{field} must be a whole number from {low} "
                          f"to {high}")
        out[key] = value * factor
    if drop is not None:
        out["drop"] = _drop(drop, account_id, config)
    return out


def check_drop(drop, field: str = "voicemailDrop"):
    """The drop's shape (an asset id, or {text, voice?, engine?}); nothing rendered."""
    if isinstance(drop, str):
        if not 0 < len(drop) <= 64:
            raise invalid(field, "unknown-audio", f"{field} is an audio asset id")
        return drop
    if not isinstance(drop, dict):
        raise invalid(field, "invalid-type", f"{field} is an audio asset id or {{text, voice}}")
    stray = sorted(set(drop) - {"text", "voice", "engine"})
    if stray:
        raise invalid(f"{field}.{stray[0]}", "unknown-field",
                      f"{field} takes text, voice and engine")
    text = drop.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > pipeline.MAX_TEXT_CHARS:
        raise invalid(f"{field}.text", "invalid-value",
                      f"{field}.text is 1 to {pipeline.MAX_TEXT_CHARS} characters")
    for key in ("voice", "engine"):
        value = drop.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 100):
            raise invalid(f"{field}.{key}", "invalid-type", f"{key} must be a short string")
    return drop


def _drop(drop, account_id: str, config) -> dict:
    drop = check_drop(drop)
    if isinstance(drop, str):
        asset = AudioAsset.get_or_none(AudioAsset.id == drop, AudioAsset.account == account_id)
        if asset is None:
            raise invalid("voicemailDrop", "unknown-audio",
                          f"{drop!r} is not one of this account's audio assets (GET /audio)")
        return {"file": asterisk_path(asset.id, config), "audio_id": asset.id,
                "duration": round(asset.duration_seconds, 3)}
    text = drop["text"]
    rendered, _ = assets.synthesize(text, drop.get("voice"), config, engine=drop.get("engine"))
    # named by content: the same message rendered for a campaign is staged once
    name = "drop_" + rendered.content_hash[:32]
    make_stager(config).put(rendered.path, name)
    return {"file": asterisk_path(name, config), "text": text, "voice": rendered.voice,
            "engine": rendered.provider, "duration": round(rendered.duration_seconds, 3)}
