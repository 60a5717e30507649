"""Reaching an Ultravox agent over SIP, as Ultravox's SIP guide documents it
(https://docs.ultravox.ai/telephony/sip, "Incoming SIP Calls"):

    An INVITE to the SIP user `agent_{agent_id}` creates an Ultravox call from that agent's
    call template; no HTTP request creates it. Ultravox admits the INVITE either
      - by IP allowlisting: the sending PBX's public IPv4 address is in `allowedCidrRanges`
        of the account's SIP configuration (PATCH /api/sip), and the INVITE goes to
        `agent_{agent_id}@{domain}`, the domain from GET /api/sip; or
      - by SIP registration: Ultravox registers with the PBX as a user the PBX has
        (POST /api/sip/registrations {username, password, proxy}), and the PBX sends the
        INVITE to that registered user with the SIP user `agent_{agent_id}`.
    `allowAllAgents: true` admits `agent_{id}` for every agent of the account.

So trunx's Asterisk dials, from the caller's channel:
    allowlist  PJSIP/<ultravox_sip_endpoint>/sip:agent_<id>@<domain>
    register   PJSIP/agent_<id>@<ultravox_sip_endpoint>   (the AOR's registered contact)

`trunx ultravox sip` (trunx/cli.py) sets either admission up; `pjsip_registration_conf`
is what the operator's Asterisk needs for the second.

The other way round, "Outgoing SIP Calls" (same guide; Create Agent Call,
POST /api/agents/{agent_id}/calls, whose body also takes `templateContext` and `metadata`):
    medium: {"sip": {"outgoing": {"to": "sip:<destination>@<sip_domain>", "from": ...,
                                  "username": ..., "password": ...}}}
makes Ultravox INVITE the SIP address given. trunx gives `sip:<token>@<this Asterisk>`,
a one-time token naming the caller who waits; the INVITE authenticates as the PJSIP user
`pjsip_outgoing_conf` describes and lands in [trunx-ultravox-out], which bridges it to the
caller waiting in [trunx-ai-meet] (dialplan/extensions.conf; docs/ai.md, "The outgoing
flow").
"""
from __future__ import annotations

import ipaddress
import re
import secrets
import sys

from trunx.errors import InvalidInput

MODES = ("allowlist", "register")        # how our INVITE reaches Ultravox
OUTGOING = "outgoing"                       # Ultravox INVITEs us instead
MEET_CONTEXT = "trunx-ai-meet"              # where the caller waits for Ultravox's INVITE
OUT_CONTEXT = "trunx-ultravox-out"          # where Ultravox's INVITE lands
OUTGOING_CONF_NAME = "pjsip_ultravox_outgoing.conf"
# a one-time token: the request URI user of Ultravox's INVITE and the waiting caller's key
_TOKEN = re.compile(r"^uv[0-9a-f]{32}$")
UUID_PATTERN = (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                r"[0-9a-fA-F]{12}$")
_UUID = re.compile(UUID_PATTERN)
# a SIP host (name or IPv4) with an optional port: what may follow the @ of the dial URI
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


class SipSetupError(InvalidInput):
    """A SIP setting trunx cannot use (a bad domain, endpoint, CIDR or username)."""


def is_uuid(value) -> bool:
    return isinstance(value, str) and bool(_UUID.fullmatch(value))   # no "\n" after it


def sip_user(agent_id: str) -> str:
    """The SIP user Ultravox routes to an agent by default: agent_{agent_id}."""
    if not is_uuid(agent_id):
        raise SipSetupError("bad-agent-id", f"not an Ultravox agent id: {agent_id!r}")
    return f"agent_{agent_id}"


def check_domain(domain) -> str:
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise SipSetupError("bad-sip-domain", f"not a SIP domain: {domain!r}")
    return domain


def check_endpoint(name) -> str:
    if not isinstance(name, str) or not _ENDPOINT.fullmatch(name):
        raise SipSetupError("bad-sip-endpoint", f"not a PJSIP endpoint name: {name!r}")
    return name


def dial_target(mode: str, endpoint: str, agent_id: str, domain: str | None) -> str:
    """The Dial target that reaches the agent under `mode` (see the module docstring).
    Every part is checked: it becomes an argument of an AGI EXEC."""
    user, endpoint = sip_user(agent_id), check_endpoint(endpoint)
    if mode == "register":
        return f"PJSIP/{user}@{endpoint}"
    if mode == "allowlist":
        return f"PJSIP/{endpoint}/sip:{user}@{check_domain(domain)}"
    raise SipSetupError("bad-sip-mode", f"ultravox_sip_mode must be one of {MODES}")


def new_token() -> str:
    return "uv" + secrets.token_hex(16)


def meet_target(token: str) -> str:
    """The Dial target the waiting caller dials: a Local channel into [trunx-ai-meet]."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise SipSetupError("bad-token", "not a token trunx made")
    return f"Local/{token}@{MEET_CONTEXT}"


def outgoing_medium(token: str, host: str, *, from_user: str | None = None,
                    username: str = "", password: str = "") -> dict:
    """The Create Agent Call `medium` that makes Ultravox INVITE sip:<token>@<host>."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise SipSetupError("bad-token", "not a token trunx made")
    outgoing = {"to": f"sip:{token}@{check_domain(host)}", "from": from_user or "trunx"}
    if username:
        outgoing.update(username=username, password=password)
    return {"sip": {"outgoing": outgoing}}


def pjsip_outgoing_conf(username: str, password: str) -> str:
    """The PJSIP user Ultravox's INVITE authenticates as (Asterisk's `auth_username`
    identifier finds the endpoint by the digest credentials' username), whose calls land in
    [trunx-ultravox-out]."""
    if not _USERNAME.fullmatch(username or "") or not password \
            or any(c in password for c in "\r\n;#\"") or password != password.strip():
        raise SipSetupError("bad-sip-username", "username or password unusable in pjsip.conf")
    return (f"; written for trunx's outgoing Ultravox flow: Ultravox INVITEs here as "
            f"{username}\n[{username}]\ntype = endpoint\ncontext = {OUT_CONTEXT}\n"
            f"disallow = all\nallow = ulaw,alaw\ndtmf_mode = rfc4733\ndirect_media = no\n"
            f"rtp_symmetric = yes\nauth = {username}-auth\nidentify_by = auth_username\n\n"
            f"[{username}-auth]\ntype = auth\nauth_type = userpass\nusername = {username}\n"
            f"password = {password}\n")


def cidr(address: str) -> str:
    """An IPv4 address or CIDR as Ultravox's allowedCidrRanges takes it (IPv4 CIDR only)."""
    try:
        net = ipaddress.ip_network(address.strip() if "/" in address else f"{address.strip()}/32",
                                   strict=False)
    except (ValueError, AttributeError):
        raise SipSetupError("bad-cidr", f"not an IPv4 address or CIDR: {address!r}") from None
    if net.version != 4:
        raise SipSetupError("bad-cidr", "Ultravox allowlists IPv4 CIDR ranges only")
    return str(net)


def allowlist_body(current: dict, addresses: list[str]) -> dict:
    """PATCH /api/sip: the account's ranges plus ours (kept in order, none twice), and
    every agent allowed (trunx dials agent_{id} for whichever agent a call names)."""
    ranges = list(current.get("allowedCidrRanges") or [])
    for a in addresses:
        c = cidr(a)
        if c not in ranges:
            ranges.append(c)
    return {"allowedCidrRanges": ranges, "allowAllAgents": True}


def registration_body(username: str, password: str, proxy: str) -> dict:
    """POST /api/sip/registrations: the PBX user Ultravox registers as, and where."""
    if not _USERNAME.fullmatch(username or ""):
        raise SipSetupError("bad-sip-username", "username: 1-60 of A-Z a-z 0-9 _ . -")
    return {"username": username, "password": password, "proxy": check_domain(proxy)}


def new_password() -> str:
    return secrets.token_urlsafe(24)


CONF_NAME = "pjsip_ultravox.conf"     # asterisk_conf/pjsip.conf #tryincludes it


def pjsip_registration_conf(username: str, password: str) -> str:
    """The PJSIP objects the operator's Asterisk needs for Ultravox to register as
    `username`: an endpoint of that name (Asterisk's `auth_username` identifier finds it by
    the username of the REGISTER's digest credentials), its digest auth, and an AOR of the
    same name holding the one registered contact that `PJSIP/agent_<id>@<username>`
    dials."""
    if not _USERNAME.fullmatch(username or "") or not password \
            or any(c in password for c in "\r\n;#\"") or password != password.strip():
        raise SipSetupError("bad-sip-username", "username or password unusable in pjsip.conf")
    return (f"; written by `trunx ultravox sip register`: Ultravox registers here as {username}\n"
            f"[{username}]\ntype = endpoint\ncontext = trunx-ultravox\ndisallow = all\n"
            f"allow = ulaw,alaw\ndtmf_mode = rfc4733\ndirect_media = no\nrtp_symmetric = yes\n"
            f"auth = {username}-auth\naors = {username}\n\n"
            f"[{username}-auth]\ntype = auth\nauth_type = userpass\nusername = {username}\n"
            f"password = {password}\n\n"
            f"[{username}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n")


# -- `trunx ultravox sip` ------------------------------------------------------------------

def add_cli(sub) -> None:
    """The `ultravox sip` subcommands, on the `trunx` parser's subparsers."""
    uv = sub.add_parser("ultravox", help="Ultravox (AI agents) set-up")
    uv_sub = uv.add_subparsers(dest="ultravox_command", required=True)
    sip = uv_sub.add_parser("sip", help="how Ultravox admits this Asterisk's INVITEs")
    sip_sub = sip.add_subparsers(dest="sip_command", required=True)
    sip_sub.add_parser("show", help="the account's SIP configuration and registrations")
    allow = sip_sub.add_parser("allowlist", help="admit INVITEs from these public IPv4 "
                               "addresses or CIDRs (PATCH /api/sip allowedCidrRanges)")
    allow.add_argument("address", nargs="+")
    reg = sip_sub.add_parser("register", help="have Ultravox register with this Asterisk "
                             "(POST /api/sip/registrations) and write its PJSIP user")
    reg.add_argument("--proxy", required=True,
                     help="this Asterisk's public address as Ultravox reaches it: host[:port]")
    reg.add_argument("--username", default="ultravox")
    reg.add_argument("--password", help="default: a new random one")
    reg.add_argument("--asterisk-etc", metavar="DIR", required=True,
                     help=f"Asterisk's config folder: {CONF_NAME} is written there")
    outgoing = sip_sub.add_parser("outgoing", help="let Ultravox INVITE this Asterisk "
                                  "(agent calls created over HTTP, which carry "
                                  "templateContext): write its PJSIP user")
    outgoing.add_argument("--host", required=True,
                          help="this Asterisk's public address as Ultravox reaches it: "
                               "host[:port]")
    outgoing.add_argument("--username", default="ultravox-out")
    outgoing.add_argument("--password", help="default: a new random one")
    outgoing.add_argument("--asterisk-etc", metavar="DIR", required=True,
                          help=f"Asterisk's config folder: {OUTGOING_CONF_NAME} is written "
                               "there")


def _outgoing_setup(args) -> dict:
    """`trunx ultravox sip outgoing`: the PJSIP user Ultravox's INVITEs authenticate as,
    and the settings that make trunx hand it to Ultravox. Asks Ultravox nothing: the
    credentials travel in each agent call's medium."""
    from pathlib import Path

    password = args.password or new_password()
    conf = pjsip_outgoing_conf(args.username, password)
    host = check_domain(args.host)
    target = Path(args.asterisk_etc) / OUTGOING_CONF_NAME
    target.write_text(conf)
    target.chmod(0o640)             # it holds the password
    return {"wrote": str(target),
            "config": {"ultravox_outgoing_host": host,
                       "ultravox_outgoing_username": args.username,
                       "ultravox_outgoing_password": password},
            "next": "reload Asterisk's PJSIP (module reload res_pjsip.so) and put `config` "
                    "in trunx's config (ultravox_sip_mode = outgoing sends every AI call "
                    "this way)"}


def cli(config, args, out) -> int:
    """Run one `trunx ultravox sip ...` command; prints JSON to `out`."""
    import json
    from pathlib import Path

    from trunx.ultravox import Ultravox, UltravoxError

    try:
        with Ultravox.from_config(config) as client:
            if args.sip_command == "show":
                result = {"sip": client.get_sip(),
                          "registrations": client.sip_registrations(),
                          "trunx": {"mode": config.ultravox_sip_mode,
                                    "endpoint": config.ultravox_sip_endpoint
                                    or config.trunk_endpoint}}
            elif args.sip_command == "allowlist":
                body = allowlist_body(client.get_sip(), args.address)
                result = client.update_sip(body)
            elif args.sip_command == "outgoing":
                result = _outgoing_setup(args)
            else:
                password = args.password or new_password()
                conf = pjsip_registration_conf(args.username, password)
                body = registration_body(args.username, password, args.proxy)
                target = Path(args.asterisk_etc) / CONF_NAME
                target.write_text(conf)     # first: Ultravox registers as soon as it is told
                target.chmod(0o640)         # it holds the password
                client.update_sip({"allowAllAgents": True})
                result = {"registration": client.create_sip_registration(body),
                          "wrote": str(target),
                          "next": "reload Asterisk's PJSIP (module reload res_pjsip.so) and "
                                  "set ultravox_sip_mode = register, ultravox_sip_endpoint = "
                                  f"{args.username}"}
    except (UltravoxError, SipSetupError) as exc:
        print(f"trunx: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2), file=out)
    return 0
