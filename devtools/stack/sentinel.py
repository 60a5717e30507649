"""Redis behind Sentinel on loopback, for tests: a master, a replica and three sentinels.

    with SentinelStack(tmpdir) as stack:
        stack.url            redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/trunx/0
        stack.failover()     SENTINEL FAILOVER: the replica is promoted, the master demoted
        stack.kill_master()  kill -9 of the current master: the sentinels agree (quorum 2)
                             that it is down and promote the replica
        stack.wait_promoted(old_port)

Timings are short so a failover takes seconds: a master is down after 1 s without a reply
(`down-after-milliseconds`), a failover may take 5 s (`failover-timeout`). Sentinels run
as Debian's `redis-sentinel`, or as `redis-server --sentinel` where that package is absent
(the same binary). Each writes its state back into its own config file, as Sentinel does.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Self

import redis

from .procs import free_port, spawn, stop_process, wait_until
from .redis import RedisServer

SERVICE = "trunx"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
QUORUM = 2


class SentinelStack:
    def __init__(self, workdir: str | Path, *, sentinels: int = 3, start_timeout: float = 20.0):
        self.workdir = Path(workdir)
        self.start_timeout = start_timeout
        self.servers: dict[int, RedisServer] = {}      # port -> master or replica
        # no 5 s wait before the first full sync (repl-diskless-sync-delay): tests start now
        fast = ("--repl-diskless-sync-delay", "0")
        master = free_port()
        self.servers[master] = RedisServer(self.workdir / "master", master, extra_args=fast)
        replica = free_port()
        self.servers[replica] = RedisServer(
            self.workdir / "replica", replica,
            extra_args=(*fast, "--replicaof", "127.0.0.1", str(master)))
        self.first_replica = replica
        self.first_master = master
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._sentinels: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[index], decode_responses=True,
                           socket_timeout=2.0)

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers names it."""
        for index in range(len(self.sentinel_ports)):
            try:
                with self.sentinel(index) as s:
                    return int(s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                 SERVICE)[1])
            except redis.exceptions.ConnectionError:
                continue
        raise RuntimeError("no sentinel answered")

    def _argv(self, conf: Path) -> list[str]:
        exe = shutil.which("redis-sentinel")
        if exe is not None:
            return [exe, str(conf)]
        return [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"]

    def start(self) -> SentinelStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for server in self.servers.values():
                server.start()
            for port in self.sentinel_ports:
                conf = self.workdir / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.workdir}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.first_master} {QUORUM}\n"
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n")
                self._sentinels.append(spawn(self._argv(conf),
                                             str(self.workdir / f"sentinel-{port}.log")))
            # ready for a failover: the replica holds the master's data, and each sentinel
            # sees the replica and the other sentinels (they find each other through hello
            # messages on the master, every 2 s). Promoting a replica whose first sync has
            # not finished would hand the clients an empty Redis.
            wait_until(self._ready, self.start_timeout,
                       message="sentinels aware of the replica and of each other")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        with redis.Redis(port=self.first_replica, decode_responses=True) as r:
            if r.info("replication").get("master_link_status") != "up":
                return False
        for index in range(len(self.sentinel_ports)):
            try:
                with self.sentinel(index) as s:
                    replicas = s.execute_command("SENTINEL", "REPLICAS", SERVICE)
                    others = s.execute_command("SENTINEL", "SENTINELS", SERVICE)
            except redis.exceptions.RedisError:
                return False
            if not replicas or len(others) < len(self.sentinel_ports) - 1:
                return False
        return True

    def failover(self) -> int:
        """SENTINEL FAILOVER (no agreement needed): returns the new master's port."""
        old = self.master_port()
        with self.sentinel() as s:
            s.execute_command("SENTINEL", "FAILOVER", SERVICE)
        return self.wait_promoted(old)

    def kill_master(self) -> int:
        """kill -9 of the current master; returns its port (wait_promoted(port) follows)."""
        port = self.master_port()
        self.servers[port].kill()
        return port

    def wait_promoted(self, old: int, timeout: float = 20.0) -> int:
        """Until the sentinels name another master and it says it is one."""
        def promoted() -> int | None:
            port = self.master_port()
            if port == old:
                return None
            with redis.Redis(port=port, socket_timeout=1.0) as r:
                return port if r.info("replication")["role"] == "master" else None

        return wait_until(promoted, timeout, message=f"a master other than {old}")

    def stop(self) -> None:
        for proc in self._sentinels:
            stop_process(proc)
        self._sentinels = []
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
