"""The content cache's purge (trunx/media/cache.py) on real files: entries unused for
media_cache_days go, recent ones and an asset's hard-linked copy stay, a cache hit keeps
its entry young."""
from __future__ import annotations

import os
import time

from trunx import config as trunx_config
from trunx.media import cache, pipeline


def _entry(root, kind: str, name: str, age_days: float) -> str:
    folder = root / "cache" / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wav"
    path.write_bytes(b"RIFF" + b"\0" * 96)
    then = time.time() - age_days * 86400
    os.utime(path, (then, then))        # neither rendered nor served since
    return str(path)


def test_old_entries_go_and_asset_copies_stay(tmp_path):
    cfg = trunx_config.load(env={}, data_dir=str(tmp_path), media_cache_days=7)
    old_tts = _entry(tmp_path, "tts", "a" * 64, 8)
    old_upload = _entry(tmp_path, "uploads", "b" * 64, 30)
    fresh = _entry(tmp_path, "tts", "c" * 64, 1)
    (tmp_path / "audio").mkdir()
    master = tmp_path / "audio" / "aud_0123456789abcdef.wav"
    os.link(old_tts, master)                      # as admin_api/assets.py keeps an asset
    busy = tmp_path / "cache" / "tts" / ".render-x"
    busy.mkdir()                                  # a render in progress is not an entry
    assert cache.purge(cfg) == (2, 200)
    assert not os.path.exists(old_tts) and not os.path.exists(old_upload)
    assert os.path.exists(fresh) and master.read_bytes().startswith(b"RIFF")
    assert busy.is_dir()
    assert cache.purge(cfg) == (0, 0)
    assert cache.purge(cfg.replace(media_cache_days=0), now=time.time() + 1e9) == (0, 0)


def test_a_cache_hit_keeps_its_entry(tmp_path):
    cfg = trunx_config.load(env={}, data_dir=str(tmp_path), media_cache_days=7)
    entry = _entry(tmp_path, "tts", "d" * 64, 30)
    rendered = os.stat(entry).st_mtime_ns
    assert pipeline._hit(entry)                   # what render_tts does on a hit
    assert os.stat(entry).st_mtime_ns == rendered  # when it was rendered stays
    assert cache.purge(cfg) == (0, 0) and os.path.exists(entry)
    assert not pipeline._hit(str(tmp_path / "cache" / "tts" / "missing.wav"))
