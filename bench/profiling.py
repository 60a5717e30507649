"""Where the time goes: py-spy samples of a running server, cProfile of an API handler."""
from __future__ import annotations

import cProfile
import math
import os
import pstats
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

OURS = ("agi_server/", "trunx/", "admin_api/")
REPO = str(Path(__file__).resolve().parents[1])


def pyspy_start(pid: int, seconds: float, out: str) -> subprocess.Popen | None:
    if shutil.which("py-spy") is None:
        return None
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(math.ceil(seconds)),
                             "-r", "250", "-f", "raw", "-o", out, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_raw(path: str, top: int = 12) -> dict:
    """Self and inclusive shares of samples, from py-spy's raw (collapsed) output."""
    own, incl, total = Counter(), Counter(), 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count, frames = int(n), stack.split(";")
        total += count
        own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames if any(o in f for o in OURS)}:
            incl[frame] += count
    if not total:
        return {"samples": 0}
    return {"samples": total,
            "self": [(f, n / total) for f, n in own.most_common(top)],
            "inclusive_ours": [(f, n / total) for f, n in incl.most_common(top)]}


def _short(frame: str) -> str:
    """'CallRecord.save (agi_server/calls/record.py:49)' -> without the line number, so the
    lines of one function add up."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def cprofile(fn, calls: int, top: int = 12) -> list[tuple[str, float]]:
    """Cumulative seconds per call of our own functions while `fn` runs `calls` times."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    with tempfile.NamedTemporaryFile(suffix=".prof") as f:
        prof.dump_stats(f.name)
        stats = pstats.Stats(f.name).stats
    rows = []
    for (file, line, name), (_cc, _nc, _tt, ct, _callers) in stats.items():
        if any(o in file for o in OURS):
            rows.append((f"{name} ({os.path.relpath(file, REPO)}:{line})", ct / calls))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]
