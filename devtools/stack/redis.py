"""A throwaway redis-server on a free loopback port."""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Self

from .procs import free_port, spawn, stop_process, wait_until


class RedisServer:
    """`with RedisServer(tmpdir) as r: r.url` -- redis-server bound to 127.0.0.1 only.

    Without persistence (the default) nothing is written to workdir but the log.
    """

    def __init__(self, workdir: str | Path, port: int | None = None, *, persistent: bool = False,
                 binary: str = "redis-server", start_timeout: float = 10.0,
                 extra_args: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        self.extra_args = tuple(extra_args)     # e.g. ("--replicaof", host, port)
        self.port = port or free_port()
        self.persistent = persistent
        self.binary = binary
        self.start_timeout = start_timeout
        self.log_path = self.workdir / f"redis-{self.port}.log"
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        exe = shutil.which(self.binary)
        if exe is None:
            raise FileNotFoundError(f"{self.binary} not found: install the redis-server package")
        persistence = (["--appendonly", "yes", "--save", "60 1"] if self.persistent
                       else ["--appendonly", "no", "--save", ""])
        return [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
                "--dir", str(self.workdir), "--daemonize", "no", *persistence,
                *self.extra_args]

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = spawn(self.argv(), str(self.log_path))

        def up() -> bool:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            return self.ping()

        try:
            wait_until(up, self.start_timeout,
                       message=f"redis-server answering PING on {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def kill(self) -> None:
        """kill -9: no shutdown save, clients see their connections reset."""
        if self._proc is not None:
            self._proc.kill()
            stop_process(self._proc)      # reaps it
            self._proc = None

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (without persistence: an empty Redis)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
