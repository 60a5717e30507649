"""Real Asterisk processes run from the cached Debian root (see DESIGN.md, "Real Asterisk").

An instance is a directory under ROOT/var/tmp/trunx/ holding its rendered config and every
writable Asterisk directory, so any number of instances run side by side from one ROOT:

    ROOT/var/tmp/trunx/pbx-1a2b3c4d/
        etc/            trunx's shipped conf (trunx/asterisk/conf/*.conf) + the role's layers
                        (devtools/stack/asterisk_conf/<layer>/), etc/dialplan/
        run/ log/ spool/ lib/ cache/    Asterisk's own
        sounds/         files the engine stages for playback
        recordings/     what MixMonitor records in tests
        moh/            music on hold
        asterisk.out    the process's stdout and stderr
        owner.pid       the Python process that started it (stale dirs are swept)

Paths "in root" are what Asterisk sees (it runs under chroot); "host" paths are the same
files seen from here.
"""
from __future__ import annotations

import math
import os
import random
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Self

from trunx.asterisk import conf_dir, dialplan_dir
from trunx.config import Config

from .procs import free_port, pid_alive, spawn, stop_process, udp_range_free, wait_until

# what trunx ships (package data, as installed) ...
CONF_DIR = conf_dir()
DIALPLAN_DIR = dialplan_dir()
# ... and what only the development stack and the tests add: the test carrier's config and
# the scripted caller's contexts, which the shipped dialplan does not include
HERE = Path(__file__).resolve().parent
DEV_CONF_DIR = HERE / "asterisk_conf"
DEV_DIALPLAN_DIR = HERE / "dialplan"
TEST_INCLUDE = '#include "dialplan/test-caller.conf"\n'
INSTANCES_IN_ROOT = "/var/tmp/trunx"
ASTERISK_BIN = "/usr/sbin/asterisk"
# a role is the layers of DEV_CONF_DIR written over the shipped config, in order:
# "carrier" is the test carrier; "carrier_auth" the same carrier requiring its PBX to
# register and to answer a digest challenge (the trunk an operator gets from a real carrier)
# "stock" is Debian's own /etc/asterisk from the root (an operator's Asterisk), with only
# asterisk.conf swapped for the instance's directories; a test adds trunx to it with
# `trunx asterisk install` (the prepare hook) before it starts
ROLES = {"pbx": (), "carrier": ("carrier",), "carrier_auth": ("carrier", "carrier_auth"),
         "stock": ()}
_PLACEHOLDER = re.compile(r"@@([A-Z][A-Z0-9_]*)@@")
_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C"}


class AsteriskError(RuntimeError):
    pass


class RootMissing(AsteriskError):
    pass


def default_root() -> Path:
    if os.environ.get("TRUNX_ASTERISK_ROOT"):
        return Path(os.environ["TRUNX_ASTERISK_ROOT"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trunx" / "asterisk-root"


def find_root(root: str | Path | None = None) -> Path:
    """The Asterisk root built by scripts/build-asterisk-root.sh, or RootMissing saying how
    to build it."""
    root = Path(root) if root else default_root()
    if not (root / ".trunx-ready").is_file() or not (root / ASTERISK_BIN.lstrip("/")).exists():
        raise RootMissing(f"no Asterisk root at {root}: run `make asterisk` "
                          "(scripts/build-asterisk-root.sh) to build it")
    return root


def render(text: str, values: dict[str, object], source: str = "<template>") -> str:
    """Fill @@NAME@@ placeholders; a name with no value is an error, not an empty string."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{source}: no value for placeholder @@{name}@@")
        return str(values[name])
    return _PLACEHOLDER.sub(fill, text)


def render_config(dest_etc: Path, values: dict[str, object], role: str = "pbx",
                  conf_dir: Path = CONF_DIR, dialplan_dir: Path = DIALPLAN_DIR,
                  test_contexts: bool = True) -> list[Path]:
    """Write conf_dir/*.conf, then each of the role's layers (DEV_CONF_DIR/<layer>/*.conf)
    over them, and the shipped and development dialplans into dest_etc/dialplan/, all
    rendered. A PBX with test_contexts also includes the scripted caller's contexts (the
    shipped dialplan does not). Returns the files written."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {tuple(ROLES)}, not {role!r}")
    sources: dict[Path, Path] = {}
    for src in sorted(conf_dir.glob("*.conf")):
        sources[dest_etc / src.name] = src
    for layer in ROLES[role]:
        for src in sorted((DEV_CONF_DIR / layer).glob("*.conf")):
            sources[dest_etc / src.name] = src
    for folder in (dialplan_dir, DEV_DIALPLAN_DIR):
        for src in sorted(folder.glob("*.conf")):
            sources[dest_etc / "dialplan" / src.name] = src
    for dest, src in sources.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(src.read_text(), values, str(src)))
    if role in ("pbx", "stock") and test_contexts:
        with open(dest_etc / "extensions.conf", "a") as out:
            out.write("\n; added by the development stack, not shipped\n" + TEST_INCLUDE)
    manager = dest_etc / "manager.conf"
    if manager.is_file() and values.get("AMI_USER"):
        with open(manager, "a") as out:
            out.write(WATCH_USER.format(user=watch_user(str(values["AMI_USER"])),
                                        secret=values["AMI_SECRET"]))
    return list(sources)


# Tests and the bench watch Asterisk's events through a user of their own: the engine's
# user sees only the events it acts on (the shipped manager.conf's eventfilter), a test's
# observer sees them all. Added by the development stack, not shipped.
WATCH_USER = """
; added by the development stack, not shipped: tests' and the bench's observer
[{user}]
secret = {secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = call,originate,reporting,agent,user
"""


def watch_user(ami_user: str) -> str:
    return f"{ami_user}-watch"


# RTP and RTCP take a port each per call leg with media: 2,400 ports hold 1,200 calls on
# the trunk (each instance has its own range; the load run behind this: docs/operators.md)
RTP_PORTS = 2400
_rtp_ranges_given: list[range] = []


def _pick_rtp_range(count: int) -> int:
    """An even start in 20000-39999 for `count` ports: a slot overlapping no range this
    process handed out, whose first ports are free, tried in random order; else (more
    instances at once than slots) any start. Overlaps, with another process or past the
    slots, cost only spread: Asterisk skips the ports it cannot bind."""
    lo, hi = 20000, 40000
    count += count % 2
    starts = list(range(lo, hi - count + 1, count)) if count <= hi - lo else [lo]
    random.shuffle(starts)
    for start in starts:
        wanted = range(start, start + count)
        if any(wanted.start < r.stop and r.start < wanted.stop for r in _rtp_ranges_given):
            continue
        if udp_range_free(start, min(count, 8)):
            _rtp_ranges_given.append(wanted)
            return start
    start = random.randrange(lo, max(lo + 2, hi - count), 2)
    _rtp_ranges_given.append(range(start, start + count))
    return start


def _release_rtp_range(start: int) -> None:
    """Let a stopped instance's range be handed out again (a test session starts many)."""
    _rtp_ranges_given[:] = [r for r in _rtp_ranges_given if r.start != start]


def _write_moh(path: Path) -> None:
    """Ten seconds of a soft two-note chime at 8 kHz, so hold is audible but not a tone test."""
    rate, frames = 8000, bytearray()
    for i in range(rate * 10):
        t = i / rate
        note = 523.25 if (t % 2) < 1 else 392.0
        envelope = max(0.0, 1 - (t % 1) * 1.5)
        frames += struct.pack("<h", int(3000 * envelope * math.sin(2 * math.pi * note * t)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


def sweep_stale_instances(root: Path) -> list[Path]:
    """Remove instance dirs whose owning Python process is gone (its Asterisk died with it),
    unless the dir was kept on purpose."""
    removed = []
    base = root / INSTANCES_IN_ROOT.lstrip("/")
    for inst in base.glob("*-*"):
        owner = inst / "owner.pid"
        if (inst / "keep").exists() or not owner.is_file():
            continue
        try:
            alive = pid_alive(int(owner.read_text().strip()))
        except ValueError:
            alive = False
        if not alive:
            shutil.rmtree(inst, ignore_errors=True)
            removed.append(inst)
    return removed


def wav_closed(path: Path) -> bool:
    """True once a WAVE file's header accounts for every byte after it."""
    try:
        size = path.stat().st_size
        with wave.open(str(path)) as wav:
            frames = wav.getnframes() * wav.getsampwidth() * wav.getnchannels()
    except (OSError, EOFError, wave.Error):
        return False
    return 0 < size - frames <= 64  # 44 bytes of header, a padding byte at most, and more


class Asterisk:
    """One Asterisk process from ROOT with trunx's config (role "pbx") or the test carrier's
    (role "carrier"). Ports left as None are chosen free at construction, so a PBX and a
    carrier can be told each other's SIP port before either starts. The instance dir is
    <name>-<instance> (instance: random unless given, e.g. a stable "dev" for `make run`);
    it is removed on stop unless keep.

        pbx = Asterisk(root, "pbx", agi_port=4573)
        carrier = Asterisk(root, "carrier", role="carrier", sip_port=pbx.carrier_sip_port,
                           pbx_sip_port=pbx.sip_port)
        with pbx, carrier:
            pbx.cli("core show channels")
    """

    def __init__(self, root: str | Path, name: str = "pbx", role: str = "pbx", *,
                 agi_port: int = Config.agi_port, sip_port: int | None = None,
                 carrier_sip_port: int | None = None, pbx_sip_port: int | None = None,
                 ami_port: int | None = None, rtp_ports: int = RTP_PORTS,
                 ami_user: str = Config.ami_user, ami_secret: str = Config.ami_secret,
                 instance: str | None = None, keep: bool = False, boot_timeout: float = 60.0,
                 conf_dir: Path = CONF_DIR, dialplan_dir: Path = DIALPLAN_DIR,
                 test_contexts: bool = True, values: dict[str, object] | None = None,
                 prepare: Callable[[Path], object] | None = None):
        if role not in ROLES:
            raise ValueError(f"role must be one of {tuple(ROLES)}, not {role!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
            raise ValueError(f"name must be [a-z0-9_]+, not {name!r}")
        self.root = Path(root)
        self.name, self.role = name, role
        self.agi_port = agi_port
        self.ami_port = ami_port or free_port()
        self.sip_port = sip_port or free_port(socket.SOCK_DGRAM)
        # the other end of the trunk; an unused port when there is none, so config stays valid
        self.carrier_sip_port = carrier_sip_port or free_port(socket.SOCK_DGRAM)
        self.pbx_sip_port = pbx_sip_port or free_port(socket.SOCK_DGRAM)
        self.test_contexts = test_contexts
        self.prepare_etc = prepare
        self.extra_values = dict(values or {})
        self.rtp_start = _pick_rtp_range(rtp_ports)
        self.rtp_end = self.rtp_start + rtp_ports - 1
        self.ami_user, self.ami_secret = ami_user, ami_secret
        self.watch_user = watch_user(ami_user)     # an observer's login: every event
        self.keep = keep
        self.boot_timeout = boot_timeout
        self.conf_dir, self.dialplan_dir = Path(conf_dir), Path(dialplan_dir)
        instance = instance or secrets.token_hex(4)
        if not re.fullmatch(r"[a-z0-9_]+", instance):
            raise ValueError(f"instance must be [a-z0-9_]+, not {instance!r}")
        self.instance_dir_in_root = f"{INSTANCES_IN_ROOT}/{name}-{instance}"
        self.instance_dir_host = self.host_path(self.instance_dir_in_root)
        self.conf_in_root = f"{self.instance_dir_in_root}/etc/asterisk.conf"
        self.sounds_dir_in_root = f"{self.instance_dir_in_root}/sounds"
        self.sounds_dir_host = self.host_path(self.sounds_dir_in_root)
        self.recordings_dir_in_root = f"{self.instance_dir_in_root}/recordings"
        self.recordings_dir_host = self.host_path(self.recordings_dir_in_root)
        self.log_path = self.host_path(f"{self.instance_dir_in_root}/log/messages.log")
        self.out_path = self.instance_dir_host / "asterisk.out"
        self.boot_seconds: float | None = None
        self._proc: subprocess.Popen | None = None

    # paths ---------------------------------------------------------------------------
    def host_path(self, path_in_root: str) -> Path:
        return self.root / path_in_root.lstrip("/")

    def root_path(self, host_path: str | Path) -> str:
        return "/" + str(Path(host_path).resolve().relative_to(self.root.resolve()))

    def finished_recordings(self, pattern: str) -> list[Path]:
        """Recordings matching `pattern` that MixMonitor has closed, oldest first.

        MixMonitor creates the file at once and fills in the RIFF sizes only when it closes
        it, a moment after the channel's Hangup event: a file seen before then is no WAVE yet.
        """
        return sorted((p for p in self.recordings_dir_host.glob(pattern) if wav_closed(p)),
                      key=lambda p: p.stat().st_mtime)

    def values(self) -> dict[str, object]:
        return {
            "INSTANCE_DIR": self.instance_dir_in_root,
            "SYSTEM_NAME": f"trunx-{self.name}",
            "AMI_PORT": self.ami_port, "AMI_USER": self.ami_user, "AMI_SECRET": self.ami_secret,
            "SIP_PORT": self.sip_port, "CARRIER_SIP_PORT": self.carrier_sip_port,
            "PBX_SIP_PORT": self.pbx_sip_port,
            "RTP_START": self.rtp_start, "RTP_END": self.rtp_end,
            "AGI_PORT": self.agi_port, "SOUNDS_DIR": self.sounds_dir_in_root,
            **self.extra_values,
        }

    # lifecycle -----------------------------------------------------------------------
    def _prepare(self) -> None:
        sweep_stale_instances(self.root)
        inst = self.instance_dir_host
        owner = inst / "owner.pid"
        if owner.is_file() and pid_alive(int(owner.read_text().strip() or 0)):
            raise AsteriskError(f"{inst} is in use by process {owner.read_text().strip()}")
        for sub in ("etc", "run", "log", "spool", "lib", "cache", "sounds", "recordings", "moh"):
            (inst / sub).mkdir(parents=True, exist_ok=True)
        (inst / "owner.pid").write_text(f"{os.getpid()}\n")
        if self.keep:
            (inst / "keep").touch()
        if self.role == "stock":
            self._stock_config(inst / "etc")
        else:
            render_config(inst / "etc", self.values(), self.role, self.conf_dir,
                          self.dialplan_dir, self.test_contexts)
        if self.prepare_etc is not None:
            self.prepare_etc(inst / "etc")
        _write_moh(inst / "moh" / "chime.wav")

    def _stock_config(self, etc: Path) -> None:
        """The root's stock configs, our asterisk.conf (instance directories) over theirs, the
        development dialplan beside them; the test-caller include appended to extensions.conf
        (an operator's Asterisk has no such thing; tests place calls with it)."""
        shutil.copytree(self.root / "etc/asterisk", etc, dirs_exist_ok=True, symlinks=True)
        (etc / "asterisk.conf").write_text(render((self.conf_dir / "asterisk.conf").read_text(),
                                                  self.values(), "asterisk.conf"))
        (etc / "dialplan").mkdir(exist_ok=True)
        for src in sorted(DEV_DIALPLAN_DIR.glob("*.conf")):
            (etc / "dialplan" / src.name).write_text(render(src.read_text(), self.values()))
        if self.test_contexts:
            with open(etc / "extensions.conf", "a") as out:
                out.write("\n; added by the development stack, not shipped\n" + TEST_INCLUDE)

    def _rx_argv(self, command: str) -> list[str]:
        return ["chroot", str(self.root), ASTERISK_BIN, "-C", self.conf_in_root, "-rx", command]

    def start(self) -> Asterisk:
        if self._proc is not None:
            raise AsteriskError(f"{self.name} already started")
        if os.geteuid() != 0:
            raise AsteriskError("running Asterisk under chroot needs root")
        self._prepare()
        began = time.monotonic()
        self._proc = spawn(["chroot", str(self.root), ASTERISK_BIN, "-f", "-n",
                            "-C", self.conf_in_root], str(self.out_path), env=_CHROOT_ENV)
        try:
            wait_until(self._booted, self.boot_timeout, interval=0.1,
                       message=f"Asterisk {self.name} fully booted")
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - began
        return self

    def _booted(self) -> bool:
        if self._proc.poll() is not None:
            raise AsteriskError(f"Asterisk {self.name} exited with {self._proc.returncode} while "
                                f"booting:\n{self.log_tail()}")
        # fails at once while the control socket is not there yet; blocks until booted after
        done = subprocess.run(self._rx_argv("core waitfullybooted"), capture_output=True,
                              text=True, env=_CHROOT_ENV, timeout=self.boot_timeout,
                              check=False)
        return done.returncode == 0 and "fully booted" in done.stdout

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one CLI command (asterisk -rx) and return its output."""
        if "\n" in command or "\r" in command:
            raise ValueError("a CLI command is one line")
        done = subprocess.run(self._rx_argv(command), capture_output=True, text=True,
                              env=_CHROOT_ENV, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AsteriskError(f"`{command}` on {self.name} failed ({done.returncode}): "
                                f"{done.stdout}{done.stderr}")
        return done.stdout

    def stop(self, timeout: float = 10.0) -> None:
        """`core stop now`, then SIGTERM/SIGKILL past the deadline; reaps; removes the
        instance dir unless keep was asked."""
        proc, self._proc = self._proc, None
        _release_rtp_range(self.rtp_start)
        if proc is not None:
            if proc.poll() is None:
                try:
                    subprocess.run(self._rx_argv("core stop now"), capture_output=True,
                                   env=_CHROOT_ENV, timeout=timeout, check=False)
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            stop_process(proc, timeout=3.0)
        if self.keep:
            (self.instance_dir_host / "owner.pid").unlink(missing_ok=True)
        else:
            shutil.rmtree(self.instance_dir_host, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def log_tail(self, chars: int = 4000) -> str:
        parts = []
        for path in (self.out_path, self.log_path):
            if path.exists():
                parts.append(f"--- {path}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(parts)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<Asterisk {self.name} role={self.role} ami={self.ami_port} sip={self.sip_port} "
                f"rtp={self.rtp_start}-{self.rtp_end} {'running' if self.running else 'stopped'}>")



def pbx_and_carrier(root: str | Path, agi_port: int = Config.agi_port,
                    **kwargs) -> tuple[Asterisk, Asterisk]:
    """A PBX and a test carrier wired to each other's SIP port (not started)."""
    pbx = Asterisk(root, "pbx", agi_port=agi_port, **kwargs)
    carrier = Asterisk(root, "carrier", role="carrier", sip_port=pbx.carrier_sip_port,
                       pbx_sip_port=pbx.sip_port, **kwargs)
    return pbx, carrier
