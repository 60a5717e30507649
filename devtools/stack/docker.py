"""Asterisk in a container, for machines where a Docker engine answers (testcontainers).

The chroot (asterisk.py) is what these machines and CI run: they have no Docker engine.
Where one answers, the `pbx` and `carrier` test fixtures run the same Asterisk 22 in a
container instead (TRUNX_STACK=chroot keeps the chroot; =docker insists on Docker).

ContainerAsterisk keeps Asterisk's interface and its path scheme: `root` is a host folder
standing in for the chroot's, whose var/tmp/trunx/ (every instance's config, sounds and
recordings) is bind-mounted at /var/tmp/trunx in the container, so a path "in root" is the
same path in the container. Host networking keeps the ports the stack chose.
Not exercised here or by CI (no Docker engine): see docs/operators.md, "Docker".
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from .asterisk import ASTERISK_BIN, INSTANCES_IN_ROOT, Asterisk, AsteriskError
from .procs import wait_until

IMAGE_TAG = "trunx-test-asterisk:22"
HERE = Path(__file__).resolve().parent


def docker_answers(timeout: float = 1.0, docker_host: str | None = None) -> bool:
    """True when the Docker engine at DOCKER_HOST (default: the local unix socket) answers
    the Engine API's `GET /_ping` with 200 OK."""
    host = docker_host or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = host[len("unix://"):]
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://"):].rstrip("/").rpartition(":")
            sock, address = socket.socket(), (name, int(port))
        else:
            return False
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except (OSError, ValueError):
        return False
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.split(b" ", 2)[1:2] == [b"200"] and body.strip() == b"OK"


def backend() -> str:
    """"docker" or "chroot": TRUNX_STACK if set, else docker where an engine answers."""
    chosen = os.environ.get("TRUNX_STACK", "")
    if chosen in ("docker", "chroot"):
        return chosen
    return "docker" if docker_answers() else "chroot"


def container_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "trunx" / "container-root"
    (root / INSTANCES_IN_ROOT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


def build_image() -> str:
    """Build (Docker caches it) the image of devtools/stack/Dockerfile.asterisk."""
    from testcontainers.core.image import DockerImage

    DockerImage(path=str(HERE), dockerfile_path="Dockerfile.asterisk", tag=IMAGE_TAG,
                clean_up=False).build()
    return IMAGE_TAG


class ContainerAsterisk(Asterisk):
    """An Asterisk as asterisk.py runs one, in a container (see the module docstring)."""

    _container = None

    def start(self) -> ContainerAsterisk:
        from testcontainers.core.container import DockerContainer

        if self._container is not None:
            raise AsteriskError(f"{self.name} already started")
        self._prepare()
        began = time.monotonic()
        mount = str(self.root / INSTANCES_IN_ROOT.lstrip("/"))
        self._container = DockerContainer(
            build_image(), volumes=[(mount, INSTANCES_IN_ROOT, "rw")], network_mode="host",
            entrypoint=[ASTERISK_BIN], command=["-f", "-n", "-C", self.conf_in_root]).start()
        try:
            wait_until(self._booted, self.boot_timeout, interval=0.2,
                       message=f"Asterisk {self.name} fully booted (container)")
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - began
        return self

    def _rx(self, command: str) -> tuple[int, str]:
        result = self._container.exec([ASTERISK_BIN, "-C", self.conf_in_root, "-rx", command])
        return result.exit_code, result.output.decode(errors="replace")

    def _booted(self) -> bool:
        code, out = self._rx("core waitfullybooted")
        return code == 0 and "fully booted" in out

    def cli(self, command: str, timeout: float = 10.0) -> str:
        if "\n" in command or "\r" in command:
            raise ValueError("a CLI command is one line")
        code, out = self._rx(command)
        if code != 0:
            raise AsteriskError(f"`{command}` on {self.name} failed ({code}): {out}")
        return out

    def stop(self, timeout: float = 10.0) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()
        super().stop(timeout)       # no process of ours; releases the ports and the folder

    @property
    def running(self) -> bool:
        return self._container is not None
