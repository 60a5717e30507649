"""Audio: speaking, transcoding and staging a 10 s prompt (issue 6, part 5).

trunx: `render_tts(text, None, "standard", None, config)` then `LocalStager(dir).put`,
on a cold cache (a new data dir each round) and on a warm one (the cache hit). Baseline:
what a script would do by hand, `espeak-ng -w` then `sox` to 8 kHz mono 16-bit, then a
copy into the sounds folder, each a subprocess. Median of `rounds` rounds.

Next to it, the neural voice with no key (Piper in its worker process) against espeak-ng:
the time to render the whole 10 s prompt, and the time to first audio of a sentence-by-
sentence render (`stream_tts`, what a live speak plays from), both on a cold cache with the
worker already running; and the worker's own start (loading the voice), once.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time

from trunx import config as trunx_config
from trunx.media import LocalStager, piper, render_tts, stream_tts
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
    out["neural"] = neural(rounds, log=log)
    log(f"  audio {seconds:.1f} s prompt: cold {out['cold_ms']:.0f} ms (baseline "
        f"{out['baseline_ms']:.0f} ms), hit {out['hit_ms']:.2f} ms, hit+stage "
        f"{out['hit_staged_ms']:.2f} ms")
    return out


def _first_audio(text: str, engine: str, cfg) -> tuple[float, float]:
    """(seconds to the first sentence's playable file, seconds to all of them)."""
    t0 = time.perf_counter()
    pieces = stream_tts(text, None, engine, None, cfg)
    next(pieces)
    first = time.perf_counter() - t0
    for _ in pieces:
        pass
    return first, time.perf_counter() - t0


def neural(rounds: int = 7, log=print) -> dict:
    """The local neural voice next to espeak-ng: whole-prompt render and first audio."""
    if not piper.available():
        log("  neural: skipped (the `neural` extra is not installed)")
        return {"skipped": "the neural extra is not installed"}
    med = statistics.median
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="trunx-bench-neural-") as tmp:
        client = piper.Piper()
        t0 = time.perf_counter()
        client.warm()
        worker_start = time.perf_counter() - t0
        client.close()
        base = trunx_config.load(env={}, data_dir=tmp)
        piper.shared(base.neural_voice, base.piper_timeout).warm()
        for engine in ("neural", "standard"):
            render, first, total, seconds = [], [], [], 0.0
            for i in range(rounds):
                cfg = base.replace(data_dir=os.path.join(tmp, f"{engine}{i}"))
                t0 = time.perf_counter()
                seconds = render_tts(PROMPT, None, engine, None, cfg).duration_seconds
                render.append(time.perf_counter() - t0)
                cfg = base.replace(data_dir=os.path.join(tmp, f"{engine}{i}-stream"))
                f, t = _first_audio(PROMPT, engine, cfg)
                first.append(f)
                total.append(t)
            rows[engine] = {"prompt_seconds": seconds, "render_ms": med(render) * 1000,
                            "first_audio_ms": med(first) * 1000,
                            "stream_total_ms": med(total) * 1000}
    out = {"rounds": rounds, "worker_start_ms": worker_start * 1000, **rows}
    log(f"  neural {rows['neural']['prompt_seconds']:.1f} s prompt: render "
        f"{rows['neural']['render_ms']:.0f} ms, first audio "
        f"{rows['neural']['first_audio_ms']:.0f} ms (espeak-ng "
        f"{rows['standard']['render_ms']:.0f} / {rows['standard']['first_audio_ms']:.0f} ms)")
    return out
