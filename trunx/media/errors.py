"""The media pipeline's errors: one family under trunx's error tree (trunx/errors.py).

::

    MediaError                                 any failure of the pipeline (catch this)
    ├── BadMedia             InvalidInput      empty-audio, transcode-failed, invalid-text,
    │                                          invalid-voice, unknown-voice, invalid-settings,
    │                                          invalid-provider, invalid-asset-id,
    │                                          invalid-url, url-not-allowed
    ├── UnsupportedMedia     Unsupported       unsupported-media-type
    ├── MediaTooLarge        TooLarge          payload-too-large
    ├── MediaNotConfigured   NotConfigured     provider-not-configured
    ├── ToolFailed           Internal          tool-missing, tts-failed (sox, espeak-ng)
    ├── ProviderFailed       UpstreamError     tts-provider-error, staging-failed,
    │                                          staging-host-key, fetch-failed
    ├── ProviderTimeout      UpstreamTimeout   tts-provider-timeout, fetch-timeout
    └── ProviderUnavailable  Unavailable       tts-provider-unavailable

Each is `(code, message, details)`; its second base is the kind that says what went wrong,
which is all the admin API needs to answer it. Misuse by our own callers (a wrong type, a
bad config value) stays a plain TypeError/ValueError, because no user can fix it.
"""
from __future__ import annotations

from trunx.errors import (
    Internal,
    InvalidInput,
    NotConfigured,
    TooLarge,
    TrunxError,
    Unavailable,
    Unsupported,
    UpstreamError,
    UpstreamTimeout,
)


class MediaError(TrunxError):
    pass


class BadMedia(MediaError, InvalidInput):
    pass


class UnsupportedMedia(MediaError, Unsupported):
    pass


class MediaTooLarge(MediaError, TooLarge):
    pass


class MediaNotConfigured(MediaError, NotConfigured):
    pass


class ToolFailed(MediaError, Internal):
    pass


class ProviderFailed(MediaError, UpstreamError):
    pass


class ProviderTimeout(MediaError, UpstreamTimeout):
    pass


class ProviderUnavailable(MediaError, Unavailable):
    pass


def tail(text: str | bytes, limit: int = 2000) -> str:
    """The end of a tool's stderr: the cause is usually in the last lines, not the banner."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
