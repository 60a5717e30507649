"""`trunx asterisk check`: ask a running Asterisk, over AMI as the engine's own user, whether
it can carry trunx's calls, and say what is missing in plain words.

It asks only what that least-privilege user may ask (so a pass also proves its rights):
ListCommands for the actions the engine sends, Getvar on IFMODULE() for modules and on
PJSIP_ENDPOINT() for the trunk, ShowDialPlan for each of trunx's contexts, and the global
TRUNX_AGI for the AGI route, which it then tries to reach from here.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from itertools import count

from trunx.asterisk.install import CONTEXTS, TRUNK, InstallError, parse_agi

# AMI actions the engine sends (agi_server/ami, agi_server/calls)
ACTIONS = ("Originate", "Hangup", "Getvar", "Bridge", "PlayDTMF", "StopMixMonitor",
           "ControlPlayback", "CoreShowChannels", "Ping")
# modules without which trunx cannot take or place a call, and what each is for
MODULES = {
    "pbx_config.so": "the dialplan in extensions.conf",
    "res_speech.so": "res_agi (it refuses to load without it)",
    "res_agi.so": "FastAGI to the engine",
    "app_dial.so": "Dial (transfers, the trunk)",
    "app_playback.so": "Playback",
    "app_senddtmf.so": "sending DTMF",
    "app_chanspy.so": "live actions on bridged calls",
    "app_mixmonitor.so": "recordings",
    "app_audiosocket.so": "answering-machine detection (the call's audio to the engine)",
    "res_audiosocket.so": "answering-machine detection (the call's audio to the engine)",
    "app_controlplayback.so": "actions interrupting a prompt",
    "func_cut.so": "the dialplan's CUT()",
    "func_strings.so": "the dialplan's string functions",
    "func_logic.so": "the dialplan's IF()",
    "chan_pjsip.so": "the SIP trunk",
    "res_pjsip.so": "the SIP trunk",
    "res_pjsip_endpoint_identifier_ip.so": "identifying the carrier by address",
    "res_pjsip_outbound_registration.so": "registering with the carrier",
    "res_pjsip_outbound_authenticator_digest.so": "digest auth towards the carrier",
    "res_rtp_asterisk.so": "media (RTP)",
    "format_wav.so": "the engine's prompts (wav)",
    "codec_ulaw.so": "G.711 u-law",
}


class AmiFailure(RuntimeError):
    pass


class Ami:
    """A blocking AMI session, enough for a handful of questions."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""
        self._ids = count(1)
        banner = self._line()
        if not banner.startswith("Asterisk Call Manager"):
            raise AmiFailure(f"{host}:{port} is not AMI (it said {banner[:60]!r})")

    def _line(self) -> str:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise AmiFailure("Asterisk closed the AMI connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def _message(self) -> dict[str, str]:
        msg: dict[str, str] = {}
        while (line := self._line()) != "":
            key, _, value = line.partition(":")
            msg.setdefault(key.strip(), value.strip())
        return msg

    def action(self, name: str, **fields: str) -> tuple[dict, list[dict]]:
        """Send one action; its response and, for list actions, the events it listed."""
        action_id = str(next(self._ids))
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            if any(c in str(value) for c in "\r\n"):
                raise ValueError(f"AMI field {key} holds a line break")
            lines.append(f"{key}: {value}")
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response, events = None, []
        while True:
            msg = self._message()
            if msg.get("ActionID") != action_id:
                continue
            if response is None and "Response" in msg:
                response = msg
                if msg.get("EventList") != "start":
                    return response, events
            elif msg.get("EventList") == "Complete":
                return response, events
            else:
                events.append(msg)

    def close(self) -> None:
        try:
            self.action("Logoff")
        except (OSError, AmiFailure):
            pass
        self._sock.close()


@dataclass
class Report:
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"ok       {line}" for line in self.ok]
        lines += [f"MISSING  {line}" for line in self.missing]
        verdict = ("trunx can run on this Asterisk" if not self.missing else
                   f"{len(self.missing)} thing(s) to fix before trunx can run here")
        return "\n".join(lines + [verdict]) + "\n"


def check(host: str, port: int, user: str, secret: str, timeout: float = 5.0) -> Report:
    report = Report()
    try:
        ami = Ami(host, port, timeout)
    except OSError as exc:
        report.missing.append(f"AMI at {host}:{port} does not answer ({exc.strerror or exc}): "
                              "manager.conf needs enabled = yes with this port and bindaddr")
        return report
    try:
        reply, _ = ami.action("Login", Username=user, Secret=secret, Events="off")
        if reply.get("Response") != "Success":
            report.missing.append(f"AMI refused user {user!r} ({reply.get('Message')}): a "
                                  "wrong secret, or its permit= does not allow this address")
            return report
        report.ok.append(f"AMI at {host}:{port} accepts user {user!r}")
        _rights(ami, report)
        _modules(ami, report)
        _contexts(ami, report)
        _trunk(ami, report)
        _agi_route(ami, report, timeout)
    finally:
        ami.close()
    return report


def _getvar(ami: Ami, variable: str) -> str | None:
    reply, _ = ami.action("Getvar", Variable=variable)
    return reply.get("Value") if reply.get("Response") == "Success" else None


def _rights(ami: Ami, report: Report) -> None:
    # ListCommands lists only the actions this user is allowed to send
    reply, _ = ami.action("ListCommands")
    allowed = {key for key in reply if key not in ("Response", "ActionID")}
    lacking = [a for a in ACTIONS if a not in allowed]
    if lacking:
        report.missing.append(f"the AMI user may not send {', '.join(lacking)}: its write= "
                              "needs call,originate,reporting,agent,user")
    else:
        report.ok.append("the AMI user may send every action the engine uses")


def _modules(ami: Ami, report: Report) -> None:
    if _getvar(ami, "IFMODULE(func_module.so)") != "1":
        report.missing.append("func_module.so is not loaded, so modules cannot be checked: "
                              "add `load = func_module.so` to modules.conf")
        return
    absent = [m for m in MODULES if _getvar(ami, f"IFMODULE({m})") != "1"]
    for module in absent:
        report.missing.append(f"module {module} is not loaded ({MODULES[module]}): "
                              f"add `load = {module}` to modules.conf")
    if not absent:
        report.ok.append(f"all {len(MODULES)} modules trunx needs are loaded")


def _contexts(ami: Ami, report: Report) -> None:
    absent = []
    for context in CONTEXTS:
        reply, _ = ami.action("ShowDialPlan", Context=context)
        if reply.get("Response") != "Success":
            absent.append(context)
    if absent:
        report.missing.append(f"dialplan context(s) {', '.join(absent)} missing: is "
                              '#include "trunx/extensions.conf" in extensions.conf, and was '
                              "the dialplan reloaded?")
    else:
        report.ok.append(f"trunx's {len(CONTEXTS)} dialplan contexts are loaded")


def _trunk(ami: Ami, report: Report) -> None:
    context = _getvar(ami, f"PJSIP_ENDPOINT({TRUNK},context)")
    if not context:
        report.missing.append(f"no PJSIP endpoint {TRUNK!r}: is #include \"trunx/pjsip.conf\" "
                              "in pjsip.conf, with --trunk-host given to the install?")
    elif context != "inbound":
        report.missing.append(f"endpoint {TRUNK!r} sends calls to [{context}], not [inbound]")
    else:
        report.ok.append(f"endpoint {TRUNK!r} sends the carrier's calls to [inbound]")


def _agi_route(ami: Ami, report: Report, timeout: float) -> None:
    url = _getvar(ami, "TRUNX_AGI") or ""
    if not url:
        report.missing.append("the global TRUNX_AGI is not set: is "
                              '#include "trunx/extensions.conf" in extensions.conf?')
        return
    try:
        host, port = parse_agi(url.rsplit("/", 1)[0] if url.count("/") > 2 else url)
    except InstallError:
        report.missing.append(f"TRUNX_AGI is {url!r}, not agi://host:port/ivr")
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        report.missing.append(f"nothing answers FastAGI at {host}:{port} ({exc.strerror or exc})"
                              ": start the engine (`trunx engine`) with agi_port there")
        return
    report.ok.append(f"the engine answers FastAGI at {host}:{port} (TRUNX_AGI = {url})")
