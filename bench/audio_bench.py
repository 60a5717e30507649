"""Audio: speaking, transcoding and staging a 10 s prompt (issue 6, part 5).

trunx: `render_tts(text, None, "standard", None, config)` then `LocalStager(dir).put`,
on a cold cache (a new data dir each round) and on a warm one (the cache hit). Baseline:
what a script would do by hand, `espeak-ng -w` then `sox` to 8 kHz mono 16-bit, then a
copy into the sounds folder, each a subprocess. Median of `rounds` rounds.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

from trunx import config as trunx_config
from trunx.media import LocalStager, render_tts
from trunx.media.transcode import duration

# about ten seconds at espeak-ng's default 175 words a minute
PROMPT = ("Thank you for calling. If you own a business and would like to hear how we "
          "can help you grow it, press one now. If you would rather not receive calls from "
          "us again, press nine.")


def _trunx_once(text: str, data_dir: str, sounds: str, name: str) -> tuple[float, float]:
    cfg = trunx_config.load(env={}, data_dir=data_dir)
    t0 = time.perf_counter()
    rendered = render_tts(text, None, "standard", None, cfg)
    t1 = time.perf_counter()
    LocalStager(sounds).put(rendered.path, name)
    return t1 - t0, time.perf_counter() - t0


def _baseline_once(text: str, work: str, sounds: str) -> float:
    raw, out = os.path.join(work, "raw.wav"), os.path.join(work, "out.wav")
    t0 = time.perf_counter()
    subprocess.run(["espeak-ng", "-w", raw, text], check=True, capture_output=True)
    subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    out], check=True, capture_output=True)
    shutil.copyfile(out, os.path.join(sounds, "baseline.wav"))
    return time.perf_counter() - t0


def run(rounds: int = 7, hits: int = 200, log=print) -> dict:
    cold, cold_render, base, hit, hit_staged = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="trunx-bench-audio-") as tmp:
        sounds = os.path.join(tmp, "sounds")
        os.makedirs(sounds)
        for i in range(rounds):
            render, total = _trunx_once(PROMPT, os.path.join(tmp, f"cold{i}"), sounds, "p")
            cold_render.append(render)
            cold.append(total)
            work = os.path.join(tmp, f"base{i}")
            os.makedirs(work)
            base.append(_baseline_once(PROMPT, work, sounds))
        warm = os.path.join(tmp, "cold0")
        cfg = trunx_config.load(env={}, data_dir=warm)
        seconds = duration(render_tts(PROMPT, None, "standard", None, cfg).path)
        for _ in range(hits):
            t0 = time.perf_counter()
            rendered = render_tts(PROMPT, None, "standard", None, cfg)
            t1 = time.perf_counter()
            LocalStager(sounds).put(rendered.path, "p")
            hit.append(t1 - t0)
            hit_staged.append(time.perf_counter() - t0)
    med = statistics.median
    out = {"prompt_seconds": seconds, "rounds": rounds, "hits": hits,
           "cold_ms": med(cold) * 1000, "cold_render_ms": med(cold_render) * 1000,
           "baseline_ms": med(base) * 1000, "hit_ms": med(hit) * 1000,
           "hit_p99_ms": sorted(hit)[int(len(hit) * 0.99) - 1] * 1000,
           "hit_staged_ms": med(hit_staged) * 1000}
    log(f"  audio {seconds:.1f} s prompt: cold {out['cold_ms']:.0f} ms (baseline "
        f"{out['baseline_ms']:.0f} ms), hit {out['hit_ms']:.2f} ms, hit+stage "
        f"{out['hit_staged_ms']:.2f} ms")
    return out
