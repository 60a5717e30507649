"""The one error type of the media pipeline.

    MediaError(code, message, details, status)
        every failure a caller can act on: bad input (4xx-worthy) and broken parts
        (sox, espeak-ng, the TTS provider, the staging host; 5xx-worthy)

Errors are data: `code` is a stable kebab-case id, `status` is the HTTP status the admin API
should answer with, `details` is JSON-safe. Misuse by our own callers (a wrong type, a bad
config value) stays a plain TypeError/ValueError, because no user can fix it.
"""
from __future__ import annotations

# code -> HTTP status; the admin API renders `to_dict()` under that status.
STATUS = {
    "unsupported-media-type": 415,
    "payload-too-large": 413,
    "empty-audio": 422,
    "transcode-failed": 422,
    "invalid-text": 400,
    "invalid-voice": 400,
    "unknown-voice": 400,
    "invalid-settings": 400,
    "invalid-provider": 400,
    "invalid-asset-id": 400,
    "provider-not-configured": 503,
    "tts-failed": 500,
    "tts-provider-error": 502,
    "tts-provider-timeout": 504,
    "tts-provider-unavailable": 503,
    "staging-failed": 502,
    "staging-host-key": 502,
    "tool-missing": 500,
    "invalid-url": 400,
    "url-not-allowed": 400,
    "fetch-failed": 502,
    "fetch-timeout": 504,
}


class MediaError(Exception):
    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = STATUS.get(code, 500)

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def tail(text: str | bytes, limit: int = 2000) -> str:
    """The end of a tool's stderr: the cause is usually in the last lines, not the banner."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
