"""Child processes that cannot outlive the process that started them, and waiting helpers.

Every server the harness starts (redis-server, Asterisk) goes through `spawn`:
- it gets its own session, so a Ctrl-C in the terminal reaches Python, which stops it in order;
- the kernel sends it SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG), which
  covers a test run killed with SIGKILL or SIGTERM, where no Python cleanup runs. Start
  servers from a long-lived thread (the main thread, as pytest fixtures do);
- an atexit hook stops whatever is still running when the interpreter exits normally.
"""
from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_live: set[subprocess.Popen] = set()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: list[str], log_path: str, env: dict | None = None,
          user: str | None = None) -> subprocess.Popen:
    """Start argv with stdout and stderr appended to log_path and stdin from /dev/null;
    as `user` (and its group) when given (PostgreSQL refuses to run as root)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent, user=user,
                                group=_group_of(user), extra_groups=[] if user else None)
    _live.add(proc)
    return proc


def _group_of(user: str | None) -> int | None:
    import pwd

    return pwd.getpwnam(user).pw_gid if user else None


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after timeout; always reaps. Returns the exit status."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()
    finally:
        _live.discard(proc)


@atexit.register
def _stop_all() -> None:
    for proc in list(_live):
        stop_process(proc, timeout=2.0)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on host (TCP by default, SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def udp_range_free(start: int, count: int, host: str = "127.0.0.1") -> bool:
    socks = []
    try:
        for port in range(start, start + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll predicate until it returns something truthy, and return that; TimeoutError after
    timeout seconds. Exceptions from predicate propagate."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout:.1f}s")
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], T], timeout: float = 10.0,
                           interval: float = 0.05, message: str = "condition") -> T:
    """wait_until for async tests: sleeps on the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout:.1f}s")
        await asyncio.sleep(interval)
