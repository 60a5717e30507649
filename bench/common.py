"""Small helpers every benchmark uses: file limits, /proc readings, percentiles, and a child
process spoken to in JSON lines over its stdin/stdout."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_nofile(wanted: int = 65536) -> int:
    """Raise this process's open-file limit as far as the hard limit allows; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # root may lift the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def use_loop(name: str) -> None:
    """'asyncio' (the default loop, as trunx ships) or 'uvloop'."""
    if name == "uvloop":
        import asyncio

        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif name != "asyncio":
        raise ValueError(f"unknown event loop {name!r}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def percentile(values, p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of an unsorted sequence; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def ratio(ours, theirs) -> float | None:
    if ours is None or theirs in (None, 0):
        return None
    return ours / theirs


class Child:
    """`python -m <module> <args>` in its own process, controlled by JSON lines:
    it prints one JSON object when ready, then answers each request line with one."""

    def __init__(self, module: str, *args: str, env: dict | None = None,
                 stderr_path: str | None = None):
        self.stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
            env={**os.environ, **(env or {})})
        self.ready = self._read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args[2]} exited ({self.proc.wait()}); "
                               "see its stderr log")
        return json.loads(line)

    def ask(self, request: str, **params) -> dict:
        self.proc.stdin.write(json.dumps({"op": request, **params}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self, timeout: float = 10.0) -> None:
        try:
            self.proc.stdin.close()     # the child's cue to stop
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        if self.stderr is not subprocess.DEVNULL:
            self.stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_json(module: str, job: dict, timeout: float = 300.0) -> dict:
    """Run `python -m module` once with `job` on stdin; its last stdout line is the result."""
    proc = subprocess.run([sys.executable, "-m", module], cwd=REPO, input=json.dumps(job),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
