"""`trunx asterisk install`: add trunx to an Asterisk the operator already runs.

trunx writes only files of its own, in a `trunx/` folder beside the operator's configs, and
appends one `#include` line to each of three of the operator's files; it never rewrites a
line of theirs, and a second run appends nothing (the include is already there):

    <etc>/trunx/extensions.conf   TRUNX_AGI (where the engine listens) + the dialplan below
    <etc>/trunx/dialplan.conf     trunx's contexts: [inbound], [outbound], [trunx-*]
    <etc>/trunx/manager.conf      the engine's least-privilege AMI user
    <etc>/trunx/pjsip.conf        the carrier trunk `carrier` (a template until --trunk-host)
    <etc>/extensions.conf  += #include "trunx/extensions.conf"
    <etc>/manager.conf     += #include "trunx/manager.conf"
    <etc>/pjsip.conf       += #include "trunx/pjsip.conf"

Before writing, the operator's files are read (never changed) for what would clash: a
context, endpoint or manager user of the same name refuses the install, naming it.
plan() computes every change without touching the disk; apply() carries a plan out, so
`--dry-run` prints exactly what a real run writes.
"""
from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from trunx.asterisk import conf_dir, dialplan_dir

FOLDER = "trunx"
# trunx's contexts, endpoints and users: the names an operator's config must not hold already
CONTEXTS = ("inbound", "outbound", "trunx-ivr", "trunx-reject", "trunx-trunk",
            "trunx-outbound", "trunx-spy", "trunx-inject", "trunx-consult",
            "trunx-ai-transfer", "trunx-ai-meet", "trunx-ultravox-out")
TRUNK = "carrier"
TRANSPORT = "trunx-udp"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")
_SECRET = re.compile(r"[!-~]{12,128}")     # printable ASCII, no space: one token in a .conf
_CATEGORY = re.compile(r"^\s*\[([^\]]+)\]", re.M)


class InstallError(ValueError):
    """The install cannot go ahead as asked; the message says why in plain words."""


@dataclass(frozen=True)
class Trunk:
    """A carrier trunk: where the carrier is, and how it knows us.

    host: the carrier's SIP server, `host` or `host:port`; username/secret: the digest
    credentials the carrier gave (outbound auth, and registration when register);
    match: the addresses (or address:port, or CIDR) the carrier's calls come from."""
    host: str
    username: str = ""
    secret: str = ""
    register: bool = True
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class Options:
    agi: str = "agi://127.0.0.1:4573"
    # more engines this Asterisk tries, in order, when the one before cannot be reached
    # (TRUNX_AGI_2, TRUNX_AGI_3, ...: the dialplan's [trunx-ivr])
    agi_backup: tuple[str, ...] = ()
    ami_user: str = "trunx"
    ami_secret: str = ""            # empty: keep the one already installed, or make one
    ami_bind: str = ""              # host:port; empty: leave manager.conf's [general] alone
    ami_permit: str = "127.0.0.1/255.255.255.255"   # where the engine connects from
    sip_bind: str = "0.0.0.0:5060"  # trunx's own UDP transport, when the operator has none
    trunk: Trunk | None = None


@dataclass
class Change:
    path: Path
    old: str            # "" for a new file
    new: str
    append: str = ""    # for an operator's file: the only text added

    def describe(self) -> str:
        if self.append:
            return f"append to {self.path}:\n" + "".join(f"+ {line}\n" for line in
                                                       self.append.splitlines())
        diff = difflib.unified_diff(self.old.splitlines(True), self.new.splitlines(True),
                                    str(self.path) if self.old else "/dev/null",
                                    str(self.path))
        return "".join(diff) or f"{self.path}: unchanged\n"


@dataclass
class Plan:
    etc: Path
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ami_secret: str = ""

    def describe(self) -> str:
        if not self.changes:
            body = f"nothing to change in {self.etc}: trunx is installed as asked\n"
        else:
            body = "\n".join(c.describe() for c in self.changes)
        return body + "".join(f"note: {n}\n" for n in self.notes)


# validation ------------------------------------------------------------------------------
def parse_agi(url: str, flag: str = "--agi") -> tuple[str, int]:
    """agi://host[:port] -> (host, port); anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme != "agi" or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or not _HOST.fullmatch(parts.hostname):
        raise InstallError(f"{flag} must look like agi://host:port, not {url!r}")
    try:
        port = parts.port or 4573
    except ValueError:
        raise InstallError(f"{flag} has a bad port: {url!r}") from None
    return parts.hostname, port


def _host_port(value: str, what: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not _HOST.fullmatch(host) or not (port.isascii() and port.isdigit()) or \
            not 0 < int(port) < 65536:
        raise InstallError(f"{what} must be host:port, not {value!r}")
    return value


def _check(options: Options) -> None:
    parse_agi(options.agi)
    for url in options.agi_backup:
        parse_agi(url, "--agi-backup")
    if not _NAME.fullmatch(options.ami_user):
        raise InstallError(f"--ami-user must be letters, digits, _ . -: {options.ami_user!r}")
    if options.ami_secret and not _SECRET.fullmatch(options.ami_secret):
        raise InstallError("--ami-secret must be 12-128 printable characters, no spaces")
    if options.ami_bind:
        _host_port(options.ami_bind, "--ami-bind")
    if not re.fullmatch(r"[0-9A-Fa-f.:]{2,45}(/[0-9A-Fa-f.:]{1,45})?", options.ami_permit):
        raise InstallError(f"--ami-permit takes address/mask, not {options.ami_permit!r}")
    _host_port(options.sip_bind, "--sip-bind")
    trunk = options.trunk
    if trunk is None:
        return
    if not _HOST.fullmatch(trunk.host):
        raise InstallError(f"--trunk-host must be host or host:port, not {trunk.host!r}")
    if trunk.username and not _NAME.fullmatch(trunk.username):
        raise InstallError(f"--trunk-user must be letters, digits, _ . -: {trunk.username!r}")
    if trunk.secret and not re.fullmatch(r"[!-~]{1,128}", trunk.secret):
        raise InstallError("--trunk-secret must be printable characters, no spaces")
    if bool(trunk.username) != bool(trunk.secret):
        raise InstallError("--trunk-user and --trunk-secret go together")
    if trunk.register and not trunk.username:
        raise InstallError("registration needs --trunk-user and --trunk-secret "
                           "(or --no-register)")
    for address in trunk.match:
        if not re.fullmatch(r"[0-9A-Fa-f.:/\[\]]{2,64}", address):
            raise InstallError(f"--trunk-match takes addresses, not {address!r}")


# reading the operator's files (never written but for an appended include) ------------------
def _uncommented(text: str) -> str:
    return "\n".join(line.split(";", 1)[0] for line in text.splitlines())


def _categories(text: str) -> set[str]:
    return {m.group(1).strip() for m in _CATEGORY.finditer(_uncommented(text))}


def _includes(text: str, target: str) -> bool:
    pattern = re.compile(r'^\s*#include\s+"?' + re.escape(target) + r'"?\s*$', re.M)
    return bool(pattern.search(_uncommented(text)))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _existing_secret(text: str) -> str:
    found = re.search(r"^\s*secret\s*=\s*(\S+)", text, re.M)
    return found.group(1) if found else ""


# what trunx writes -------------------------------------------------------------------------
_HEAD = "; written by `trunx asterisk install`: rewritten on each run, edit the options instead\n"


def extensions_text(agi: str, has_globals: bool, backups: tuple[str, ...] = ()) -> str:
    host, port = parse_agi(agi)
    # (+) adds to the operator's [globals]; a second plain [globals] would be ignored
    globals_head = "[globals](+)" if has_globals else "[globals]"
    more = ""
    for n, url in enumerate(backups, start=2):
        b_host, b_port = parse_agi(url)
        more += f"TRUNX_AGI_{n} = agi://{b_host}:{b_port}/ivr\n"
    if more:
        more = "; tried in order when the engine before cannot be reached\n" + more
    return (f"{_HEAD}; where the engine listens for FastAGI (the route is added per context)\n"
            f"{globals_head}\nTRUNX_AGI = agi://{host}:{port}/ivr\n{more}\n"
            f'#include "{FOLDER}/dialplan.conf"\n')


def manager_text(user: str, secret: str, ami_bind: str, has_general: bool,
                 permit: str = Options.ami_permit) -> str:
    general = ""
    if ami_bind:
        host, _, port = ami_bind.rpartition(":")
        head = "[general](+)" if has_general else "[general]"
        general = (f"; AMI on, where the engine connects (--ami-bind)\n{head}\n"
                   f"enabled = yes\nport = {port}\nbindaddr = {host}\n\n")
    return (f"{_HEAD}{general}"
            "; the engine's user: it may place and follow calls; no CLI commands, no config,\n"
            "; no system-class actions (so no Originate into System() or Exec-like apps)\n"
            f"[{user}]\nsecret = {secret}\n"
            f"deny = 0.0.0.0/0.0.0.0\npermit = {permit}\n"
            "read = call,reporting,agent,user,dtmf\n"
            "write = call,originate,reporting,agent,user\n"
            "; only the events the engine acts on (it parses every event it is sent)\n"
            f"{engine_event_filter()}\n")


def engine_event_filter() -> str:
    """The engine user's eventfilter line, as the shipped manager.conf has it (one list of
    the events the engine acts on, kept there)."""
    text = (conf_dir() / "manager.conf").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("eventfilter")]
    return line


def pjsip_text(trunk: Trunk | None, sip_bind: str, own_transport: bool) -> str:
    lines = [_HEAD.rstrip("\n"),
             "; the carrier trunk. Calls from the carrier are identified by its address and",
             "; go to [inbound]; calls out go to it with digest auth when it challenges.", ""]
    transport = ""
    if own_transport:
        transport = f"transport = {TRANSPORT}\n"
        lines += [f"[{TRANSPORT}]", "type = transport", "protocol = udp",
                  f"bind = {sip_bind}", ""]
    if trunk is None:
        lines += ["; no --trunk-host given: the trunk below is a template. Run the install",
                  "; again with --trunk-host (and --trunk-user/--trunk-secret) to fill it in."]
    body = _trunk_sections(trunk or Trunk("sip.carrier.example", "USERNAME", "SECRET"),
                           transport)
    if trunk is None:
        body = "".join(f";{line}\n" if line else "\n" for line in body.splitlines())
    return "\n".join(lines) + "\n" + body


def _trunk_sections(trunk: Trunk, transport: str) -> str:
    host_only = trunk.host.rsplit(":", 1)[0] if trunk.host.count(":") == 1 else trunk.host
    match = ",".join(trunk.match) or host_only
    auth = f"outbound_auth = {TRUNK}-auth\n" if trunk.username else ""
    out = (f"[{TRUNK}]\ntype = endpoint\n{transport}context = inbound\n"
           "disallow = all\nallow = ulaw,alaw\ndtmf_mode = rfc4733\n"
           f"aors = {TRUNK}\n{auth}"
           + (f"from_user = {trunk.username}\nfrom_domain = {host_only}\n"
              if trunk.username else "")
           + "direct_media = no\nrtp_symmetric = yes\nrewrite_contact = yes\n"
           "send_pai = yes\ntrust_id_inbound = yes\n\n"
           f"[{TRUNK}]\ntype = aor\ncontact = sip:{trunk.host}\nqualify_frequency = 60\n\n"
           f"[{TRUNK}]\ntype = identify\nendpoint = {TRUNK}\nmatch = {match}\n")
    if trunk.username:
        out += (f"\n[{TRUNK}-auth]\ntype = auth\nauth_type = userpass\n"
                f"username = {trunk.username}\npassword = {trunk.secret}\n")
    if trunk.register:
        out += (f"\n[{TRUNK}]\ntype = registration\n{transport}"
                f"outbound_auth = {TRUNK}-auth\nserver_uri = sip:{trunk.host}\n"
                f"client_uri = sip:{trunk.username}@{trunk.host}\n"
                f"contact_user = {trunk.username}\n"
                "retry_interval = 30\nforbidden_retry_interval = 300\nexpiration = 600\n")
    return out


# the plan ----------------------------------------------------------------------------------
def plan(etc: str | Path, options: Options) -> Plan:
    """Every change an install makes in etc, computed without writing anything."""
    _check(options)
    etc = Path(etc)
    if not (etc / "asterisk.conf").is_file() and not (etc / "extensions.conf").is_file():
        raise InstallError(f"{etc} holds no Asterisk config (no asterisk.conf or "
                           "extensions.conf): is --etc the folder Asterisk reads?")
    result = Plan(etc)
    ours = etc / FOLDER
    operator = {name: _read(etc / f"{name}.conf") for name in ("extensions", "manager", "pjsip")}

    clash = _categories(operator["extensions"]) & set(CONTEXTS)
    if clash:
        raise InstallError(f"{etc / 'extensions.conf'} already has context(s) "
                           f"{', '.join(sorted(clash))}; trunx's dialplan uses these names")
    if options.ami_user in _categories(operator["manager"]):
        raise InstallError(f"{etc / 'manager.conf'} already has a user "
                           f"[{options.ami_user}]: pick another with --ami-user")
    pjsip_names = _categories(operator["pjsip"])
    clash = pjsip_names & {TRUNK, f"{TRUNK}-auth", TRANSPORT}
    if clash:
        raise InstallError(f"{etc / 'pjsip.conf'} already has section(s) "
                           f"{', '.join(sorted(clash))}; trunx's trunk uses these names")

    secret = options.ami_secret or _existing_secret(_read(ours / "manager.conf")) \
        or secrets.token_urlsafe(24)
    result.ami_secret = secret
    own_transport = not re.search(r"^\s*type\s*=\s*transport\b",
                                  _uncommented(operator["pjsip"]), re.M)
    files = {
        "dialplan.conf": (dialplan_dir() / "extensions.conf").read_text(),
        "extensions.conf": extensions_text(options.agi,
                                           "globals" in _categories(operator["extensions"]),
                                           options.agi_backup),
        "manager.conf": manager_text(options.ami_user, secret, options.ami_bind,
                                     "general" in _categories(operator["manager"]),
                                     options.ami_permit),
        "pjsip.conf": pjsip_text(options.trunk, options.sip_bind, own_transport),
    }
    for name, text in files.items():
        old = _read(ours / name)
        if old != text:
            result.changes.append(Change(ours / name, old, text))
    for name, text in operator.items():
        target = f"{FOLDER}/{name}.conf"
        if not _includes(text, target):
            line = f'#include "{target}"\n'
            sep = "" if not text or text.endswith("\n") else "\n"
            result.changes.append(Change(etc / f"{name}.conf", text, text + sep + line,
                                         append=f"{sep}{line}"))
    if not own_transport:
        result.notes.append("pjsip.conf has a transport already: the trunk uses it "
                            "(no trunx transport written)")
    if options.trunk is None:
        result.notes.append("no --trunk-host: trunx/pjsip.conf holds a commented template")
    result.notes.append(_rtp_note(etc))
    if not options.ami_secret:
        result.notes.append(f"the engine's AMI secret is in {ours / 'manager.conf'}: put it "
                            "in trunx.ini as ami_secret")
    return result


def _rtp_note(etc: Path) -> str:
    text = _uncommented(_read(etc / "rtp.conf"))
    start = re.search(r"^\s*rtpstart\s*=\s*(\d+)", text, re.M)
    end = re.search(r"^\s*rtpend\s*=\s*(\d+)", text, re.M)
    low, high = (int(start.group(1)) if start else 5000), (int(end.group(1)) if end else 31000)
    calls = max(0, high - low + 1) // 2
    verdict = "enough for 1,000" if calls >= 1000 else "widen it for 1,000"
    return (f"rtp.conf's port range {low}-{high} holds {calls:,} calls with media "
            f"({verdict}); see docs/operators.md for open-file limits")


def apply(result: Plan) -> list[Path]:
    """Carry a plan out: trunx's files written whole, the operator's appended to only.
    trunx's files take the owner and group of the operator's extensions.conf (Asterisk
    runs as its own user and must read them) and are not world-readable: two hold secrets."""
    owner = (result.etc / "extensions.conf").stat() \
        if (result.etc / "extensions.conf").exists() else None
    written = []
    for change in result.changes:
        if change.append:
            with open(change.path, "a") as out:
                out.write(change.append)
        else:
            change.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            tmp = change.path.with_name(change.path.name + ".tmp")
            tmp.write_text(change.new)
            tmp.chmod(0o640)
            if owner is not None and os.geteuid() == 0:
                os.chown(tmp, owner.st_uid, owner.st_gid)
                os.chown(change.path.parent, owner.st_uid, owner.st_gid)
            tmp.replace(change.path)
        written.append(change.path)
    return written
