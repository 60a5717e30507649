"""What the numbers were measured on: the machine, the versions, and how busy it was."""
from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
from importlib import metadata
from pathlib import Path


def _out(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or
                                                                     done.stderr) else "?"


def _asterisk_version() -> str:
    try:
        from devtools.stack import find_root
        root = find_root()
    except Exception as exc:       # no root built: say so in the report
        return f"not available ({exc.__class__.__name__})"
    return _out(["chroot", str(root), "/usr/sbin/asterisk", "-V"])


def _pkg(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "memory_gib": int(mem.group(1)) / 1024 / 1024 if mem else None,
        "kernel": platform.release(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "versions": {
            "python": platform.python_version(),
            "asterisk": _asterisk_version(),
            "redis": _out(["redis-server", "--version"]),
            "panoramisk": _pkg("panoramisk"),
            "flask": _pkg("flask"),
            "gunicorn": _pkg("gunicorn"),
            "peewee": _pkg("peewee"),
            "redis-py": _pkg("redis"),
            "espeak-ng": _out(["espeak-ng", "--version"]),
            "sox": _out(["sox", "--version"]),
            "wrk": _out(["wrk", "-v"]),
        },
    }


class LoadMeter:
    """CPU the whole machine spent while the bench ran, and how much of it was ours
    (this process and the children it waited for: every server and load generator)."""

    def __init__(self):
        self.busy0, self.total0 = self._stat()
        self.ours0 = self._ours()

    @staticmethod
    def _stat() -> tuple[float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        tck = os.sysconf("SC_CLK_TCK")
        return (sum(fields) - idle) / tck, sum(fields) / tck

    @staticmethod
    def _ours() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def read(self) -> dict:
        busy, total = self._stat()
        ours = self._ours() - self.ours0
        busy -= self.busy0
        capacity = total - self.total0
        return {"machine_busy_share": busy / capacity if capacity else None,
                "others_cpu_s": max(0.0, busy - ours),
                "others_share": max(0.0, busy - ours) / capacity if capacity else None}
