"""The content cache's purge: rendered TTS (`<data_dir>/cache/tts/`) and transcoded
uploads (`<data_dir>/cache/uploads/`) not used for `media_cache_days` are deleted.

The cache only saves rendering the same text or file twice; an asset's own copy is a hard
link (or a copy) under `<data_dir>/audio/`, which outlives its cache entry. A hit touches
its entry's access time (trunx/media/pipeline.py), so an entry in use is never the
oldest. The engine
purges every `recording_purge_interval`, beside the recordings' retention.
"""
from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

KINDS = ("tts", "uploads")


def purge(config, now: float | None = None) -> tuple[int, int]:
    """Delete cache entries older than `media_cache_days`: (files, bytes) removed."""
    if config.media_cache_days <= 0:
        return 0, 0
    cutoff = (time.time() if now is None else now) - config.media_cache_days * 86400
    files = size = 0
    for kind in KINDS:
        folder = os.path.join(config.data_dir, "cache", kind)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if not entry.is_file(follow_symlinks=False) or not entry.name.endswith(".wav"):
                continue      # renders in progress live in .render-* / .upload-* folders
            try:
                stat = entry.stat(follow_symlinks=False)
                # last used: rendered (mtime), or served from the cache (atime, set by a
                # hit even where the filesystem keeps no access times)
                if max(stat.st_mtime, stat.st_atime) >= cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            files += 1
            size += stat.st_size
    if files:
        log.info("purged %d cached render(s), %d bytes, unused for %d days", files, size,
                 config.media_cache_days)
    return files, size
