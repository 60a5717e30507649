"""A real OpenSSH sshd on a free 127.0.0.1 port, for SFTP staging tests.

Everything it needs is generated in a temp folder: an ed25519 host key, a client key and
authorized_keys, a known_hosts line for the host key, the config, the pid file and the log.
Only key logins are accepted. Usage:

    with Sshd(tmp_path) as sshd:
        SftpStager(sshd.host, sshd.port, sshd.user, remote_dir,
                   key_file=sshd.client_key, known_hosts=sshd.known_hosts)
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                    "-f", str(path)], check=True, capture_output=True)


class Sshd:
    def __init__(self, root: str | os.PathLike):
        self.dir = Path(root) / "sshd"
        self.host = "127.0.0.1"
        self.port = 0
        self.user = getpass.getuser()
        self.host_key = self.dir / "host_ed25519"
        self.client_key = str(self.dir / "client_ed25519")
        self.known_hosts = str(self.dir / "known_hosts")
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Sshd:
        self.dir.mkdir(parents=True, exist_ok=True)
        _keygen(self.host_key, "trunx-test-host")
        _keygen(Path(self.client_key), "trunx-test-client")
        shutil.copy(self.client_key + ".pub", self.dir / "authorized_keys")
        self.port = free_port()
        host_pub = (self.dir / "host_ed25519.pub").read_text().split()[:2]
        # non-22 ports are looked up in known_hosts as "[host]:port"
        Path(self.known_hosts).write_text(f"[{self.host}]:{self.port} {' '.join(host_pub)}\n")
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "StrictModes no",                       # the temp folder is not 0700 all the way up
            "PermitRootLogin prohibit-password",    # key only, even for root
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "",
        ]))
        if os.geteuid() == 0:
            # sshd refuses to start as root without its privilege-separation folder
            os.makedirs("/run/sshd", 0o755, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not accept on port {self.port}: {self.log_text()}")

    def host_key_fingerprint(self) -> str:
        """'ssh-ed25519 SHA256:...' as ssh-keygen -l prints it."""
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                              str(self.host_key) + ".pub"], check=True, capture_output=True)
        _bits, fp, *_, kind = out.stdout.decode().split()
        return f"ssh-{kind.strip('()').lower()} {fp}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def session_pids(self) -> list[int]:
        """Processes forked by this sshd (one tree per connection), deepest first."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                children.setdefault(int(fields[1]), []).append(int(entry))
        out, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out[::-1]

    def kill_sessions(self) -> None:
        """Cut every open SSH connection, as a network failure would."""
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill_sessions()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
