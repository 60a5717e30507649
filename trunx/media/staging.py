"""Putting rendered WAVs where Asterisk plays them from: a local folder, or SFTP to its host.

A stager knows three verbs on `<name>.wav` in one folder: put, exists, delete. `name` is the
asset id; Asterisk is told `asterisk_path(asset_id, config)`, the same path without the
extension, and picks the .wav itself. A put writes a hidden temporary name and renames it,
so a Playback that races an upload hears the old file or the new one, never half of one.
"""
from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
import uuid
from contextlib import contextmanager

import paramiko

from .errors import BadMedia, ProviderFailed

# Asset ids reach a file name and an AGI argument: letters, digits, _ and - only.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise BadMedia("invalid-asset-id", "an asset id is 1-128 of A-Z a-z 0-9 _ -",
                       {"name": name if isinstance(name, str) else repr(name)})
    return name


def asterisk_path(asset_id: str, config) -> str:
    """What Playback/Background is given: the staged file's path without '.wav'."""
    return f"{config.asterisk_sounds_path.rstrip('/')}/{check_name(asset_id)}"


class LocalStager:
    """Asterisk on this machine (or a shared mount): copy into `host_dir`."""

    def __init__(self, host_dir: str):
        self.host_dir = host_dir

    def _path(self, name: str) -> str:
        return os.path.join(self.host_dir, check_name(name) + ".wav")

    def put(self, local_path: str, name: str) -> str:
        final = self._path(name)
        os.makedirs(self.host_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.host_dir)
        try:
            with os.fdopen(fd, "wb") as out, open(local_path, "rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)      # Asterisk usually runs as its own user
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return final

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def delete(self, name: str) -> bool:
        """True if a file was removed; deleting a missing file is not an error."""
        try:
            os.unlink(self._path(name))
            return True
        except FileNotFoundError:
            return False


class SftpStager:
    """Asterisk on another host: SFTP with paramiko, one short connection per call.

    The host key must already be known (`known_hosts`, else ~/.ssh/known_hosts): an unknown
    or changed key is refused, never silently trusted.
    """

    def __init__(self, host: str, port: int, user: str, remote_dir: str, *,
                 key_file: str | None = None, password: str | None = None,
                 known_hosts: str | None = None, timeout: float = 10.0):
        if not (key_file or password):
            raise ValueError("SftpStager needs key_file or password")
        self.host, self.port, self.user = host, port, user
        self.remote_dir = remote_dir.rstrip("/") or "/"
        self.key_file, self.password = key_file, password
        self.known_hosts, self.timeout = known_hosts, timeout

    def _where(self, **more) -> dict:
        return {"host": self.host, "port": self.port, "remote_dir": self.remote_dir, **more}

    @contextmanager
    def _sftp(self):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_Reject())
        try:
            if self.known_hosts:
                client.load_host_keys(self.known_hosts)
            else:
                client.load_system_host_keys()
            client.connect(self.host, port=self.port, username=self.user,
                           key_filename=self.key_file, password=self.password,
                           timeout=self.timeout, banner_timeout=self.timeout,
                           auth_timeout=self.timeout, allow_agent=False, look_for_keys=False)
            with client.open_sftp() as sftp:
                # a stalled link fails the call instead of holding a worker forever
                sftp.get_channel().settimeout(self.timeout * 6)
                yield sftp
        except (paramiko.BadHostKeyException, _UnknownHostKey) as exc:
            raise ProviderFailed("staging-host-key", "the SFTP host's key is not a known one",
                                 self._where(known_hosts=self.known_hosts or "~/.ssh/known_hosts",
                                             offered=_fingerprint(exc.key))) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # EOFError has no text: it is paramiko's word for "the connection went away"
            why = str(exc) or "connection closed"
            raise ProviderFailed("staging-failed", f"SFTP staging failed: {why}",
                                 self._where(reason=type(exc).__name__)) from exc
        finally:
            client.close()

    def _path(self, name: str) -> str:
        return posixpath.join(self.remote_dir, check_name(name) + ".wav")

    def put(self, local_path: str, name: str, *, progress=None) -> str:
        """Upload as `<name>.wav`; `progress(sent, total)` is paramiko's put callback."""
        final = self._path(name)
        tmp = posixpath.join(self.remote_dir, f".{name}.{uuid.uuid4().hex}.part")
        with self._sftp() as sftp:
            _makedirs(sftp, self.remote_dir)
            try:
                sftp.put(local_path, tmp, callback=progress, confirm=True)
                sftp.chmod(tmp, 0o644)
                # posix-rename@openssh.com replaces atomically; plain SFTP rename refuses
                # to overwrite, which would make re-staging an asset fail.
                sftp.posix_rename(tmp, final)
            except BaseException:
                try:
                    sftp.remove(tmp)
                except (OSError, paramiko.SSHException, EOFError):
                    pass    # the link itself may be gone; a stray .part is harmless
                raise
        return final

    def exists(self, name: str) -> bool:
        path = self._path(name)
        with self._sftp() as sftp:
            try:
                return stat.S_ISREG(sftp.stat(path).st_mode)
            except FileNotFoundError:
                return False

    def delete(self, name: str) -> bool:
        """True if a file was removed; deleting a missing file is not an error."""
        path = self._path(name)
        with self._sftp() as sftp:
            try:
                sftp.remove(path)
                return True
            except FileNotFoundError:
                return False


def _fingerprint(key) -> str:
    """As `ssh-keygen -lf` prints it, so an operator can compare before trusting it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


class _UnknownHostKey(Exception):
    def __init__(self, key):
        super().__init__(f"host key {_fingerprint(key)} is not in known_hosts")
        self.key = key


class _Reject(paramiko.RejectPolicy):
    """RejectPolicy whose refusal we can tell apart from other SSH failures, and which names
    the key offered, so an operator can check it before adding it to known_hosts."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(key)


def _makedirs(sftp, path: str) -> None:
    """mkdir -p over SFTP."""
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        try:
            sftp.stat(current)
        except FileNotFoundError:
            sftp.mkdir(current, 0o755)


def make_stager(config):
    """The stager the config asks for: `staging = local | sftp`."""
    if config.staging == "local":
        return LocalStager(config.staged_sounds_dir)
    if config.staging == "sftp":
        if not config.sftp_host or not config.sftp_user:
            raise ValueError("staging = sftp needs sftp_host and sftp_user")
        return SftpStager(config.sftp_host, config.sftp_port, config.sftp_user,
                          config.sftp_dir or config.asterisk_sounds_path,
                          key_file=config.sftp_key_file or None,
                          password=config.sftp_password or None,
                          known_hosts=config.sftp_known_hosts or None)
    raise ValueError(f"staging must be 'local' or 'sftp', not {config.staging!r}")
