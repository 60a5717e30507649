"""A throwaway PostgreSQL cluster: initdb into a fresh directory, the server on a free
loopback port with its unix socket in that directory, durability off (fsync, full-page
writes: a test cluster is thrown away, not recovered). Run as the `postgres` user (made by
Debian's postgresql package) when we are root, since the server refuses to run as root.

    with PostgresServer() as pg:
        pg.create_database("t1", template="tpl")
        url = pg.url("t1")   # postgresql://postgres@127.0.0.1:<port>/t1
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from .procs import free_port, spawn, stop_process, wait_until

SUPERUSER = "postgres"


def bin_dir() -> Path:
    """Debian keeps the server's programs out of PATH, one directory per major version:
    the newest installed (TRUNX_PG_BIN overrides)."""
    if os.environ.get("TRUNX_PG_BIN"):
        return Path(os.environ["TRUNX_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise FileNotFoundError("PostgreSQL's initdb not found: install the postgresql package")


def _quote_ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    return f'"{name}"'


class PostgresServer:
    def __init__(self, *, port: int | None = None, start_timeout: float = 30.0,
                 max_connections: int = 300):
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.max_connections = max_connections
        self.user = "postgres" if os.geteuid() == 0 else None
        self.workdir: Path | None = None
        self._proc: subprocess.Popen | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, user=self.user,
                              group=pwd.getpwnam(self.user).pw_gid if self.user else None,
                              extra_groups=[] if self.user else None, cwd=self.workdir)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}")

    def start(self) -> Self:
        bins = bin_dir()
        self.workdir = Path(tempfile.mkdtemp(prefix="trunx-pg-"))
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        data = self.workdir / "data"
        try:
            self._run([str(bins / "initdb"), "-D", str(data), "-U", SUPERUSER,
                       "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            log = self.workdir / "postgres.log"
            self._proc = spawn([
                str(bins / "postgres"), "-D", str(data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.workdir}",
                "-c", f"max_connections={self.max_connections}",
                "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", "synchronous_commit=off"], str(log), user=self.user)
            wait_until(self._ready, self.start_timeout,
                       message=f"postgres accepting connections on {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self._proc.returncode}:\n"
                               + (self.workdir / "postgres.log").read_text()[-2000:])
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def admin(self):
        """An autocommit connection to the `postgres` database (CREATE/DROP DATABASE)."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """The new database's URL. From `template` by file copy: for a small database,
        much quicker than WAL-logging each block (PostgreSQL 15's default)."""
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template:
            sql += f" TEMPLATE {_quote_ident(template)} STRATEGY FILE_COPY"
        with self.admin() as conn:
            conn.execute(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Dropped even with sessions still open on it (they are ended)."""
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)   # fast shutdown: ends open sessions
            stop_process(self._proc, timeout=15)
            self._proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
