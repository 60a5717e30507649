"""A FastAGI peer that behaves like Asterisk, for load and for fast engine tests.

It connects to a FastAGI server, sends the agi_* block, and answers each command after a
configurable delay: GET DATA / WAIT FOR DIGIT / STREAM FILE (with escape digits) / GET
OPTION (its prompt, then its wait) take their keys from the scenario, in order; a GET
OPTION no key answers replies when its wait would have run out (the engine checks a
question that ends early: Asterisk reads a hangup in its wait as a timeout); HANGUP and
the end of the scenario send a bare `HANGUP` line, as Asterisk does when the channel goes
away. Per-session timings are recorded: the
engine's overhead is the time from writing a reply to reading the next command.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

GATHERING = ("GET DATA", "WAIT FOR DIGIT", "GET OPTION")


@dataclass
class Scenario:
    did: str = "+19495551234"
    caller: str = "+14155550100"
    keys: list[str] = field(default_factory=list)   # "" = timeout, else the digits pressed
    reply_delay: float = 0.0
    hangup_after: int | None = None     # commands answered before the caller hangs up
    script: str = "ivr"
    dial_status: str = "ANSWER"
    missing: tuple[str, ...] = ()       # sound files this "Asterisk" does not have


@dataclass
class SessionResult:
    commands: list[str] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)  # s from our reply to next command
    elapsed: float = 0.0
    closed_by_server: bool = False
    error: str | None = None


def _env(s: Scenario, n: int) -> bytes:
    lines = {
        "agi_network": "yes", "agi_network_script": s.script, "agi_request":
        f"agi://127.0.0.1/{s.script}", "agi_channel": f"Local/{s.did}@inbound-{n:08x};2",
        "agi_language": "en", "agi_type": "Local", "agi_uniqueid": f"{time.time():.6f}.{n}",
        "agi_version": "22.0.0", "agi_callerid": s.caller, "agi_calleridname": "Emu",
        "agi_callingpres": "0", "agi_dnid": s.did, "agi_rdnis": "unknown",
        "agi_context": "inbound", "agi_extension": s.did, "agi_priority": "1",
        "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": str(n),
    }
    return ("".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode()


class _Keys:
    def __init__(self, keys):
        self.keys = list(keys)

    def next(self) -> str:
        return self.keys.pop(0) if self.keys else ""


def reply_for(line: str, keys: _Keys, s: Scenario) -> tuple[str, bool]:
    """The reply Asterisk would give, and whether the channel hangs up after it."""
    verb = line.split('"')[0].strip().upper()
    if verb.startswith("GET DATA"):
        digits = keys.next()
        return (f"200 result={digits}" if digits else "200 result= (timeout)"), False
    if verb.startswith("WAIT FOR DIGIT"):
        d = keys.next()[:1]
        return f"200 result={ord(d) if d else 0}", False
    if verb.startswith("GET OPTION"):
        # as Asterisk: the prompt (a key from the scenario may cut it short), then, if no
        # key came, the wait for one (the next key): the scenario's keys mean what they
        # meant for STREAM FILE then WAIT FOR DIGIT
        if line.split('"')[1] in s.missing:
            return "200 result=-1 endpos=0", False
        d = keys.next()[:1] or keys.next()[:1]
        return f"200 result={ord(d) if d else 0} endpos=8000", False
    if verb.startswith("STREAM FILE"):
        if line.split('"')[1] in s.missing:   # as res_agi answers a file it cannot open
            return "200 result=-1 endpos=0", False
        escape = line.split('"')[3] if line.count('"') >= 4 else ""
        d = keys.next()[:1] if escape else ""
        return f"200 result={ord(d) if d else 0} endpos=8000", False
    if verb.startswith("GET VARIABLE"):
        return f"200 result=1 ({s.dial_status})", False
    if verb.startswith("CHANNEL STATUS"):
        return "200 result=6", False      # AST_STATE_UP
    if verb.startswith("HANGUP"):
        return "200 result=1", True
    if verb.startswith(("ANSWER", "EXEC", "SET VARIABLE", "VERBOSE", "NOOP")):
        return "200 result=0", False
    return "510 Invalid or unknown command", False


async def run_session(host: str, port: int, s: Scenario, n: int = 0) -> SessionResult:
    out = SessionResult()
    keys = _Keys(s.keys)
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        out.error = f"connect: {exc}"
        return out
    hung_up = False
    try:
        writer.write(_env(s, n))
        replied_at = time.perf_counter()
        while True:
            raw = await reader.readline()
            if not raw:
                out.closed_by_server = True
                break
            out.overheads.append(time.perf_counter() - replied_at)
            line = raw.decode().rstrip("\n")
            out.commands.append(line)
            if s.reply_delay:
                await asyncio.sleep(s.reply_delay)
            reply, hang = reply_for(line, keys, s)
            if s.hangup_after is not None and len(out.commands) > s.hangup_after:
                reply, hang = "200 result=-1", True
            elif reply.startswith("200 result=0 ") and line.startswith("GET OPTION"):
                # the prompt it says it played (endpos=8000: 1 s), then its wait
                await asyncio.sleep(1 + int(line.rsplit(" ", 1)[1]) / 1000)
            # one write: a server that closes after reading the reply must not find the
            # HANGUP line still unread (its close would then be a reset)
            writer.write(reply.encode() + (b"\nHANGUP\n" if hang else b"\n"))
            hung_up = hung_up or hang
            replied_at = time.perf_counter()
    except (ConnectionError, OSError) as exc:
        if hung_up and isinstance(exc, ConnectionResetError):
            out.closed_by_server = True     # it closed with our HANGUP line unread
        else:
            out.error = str(exc)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    out.elapsed = time.perf_counter() - t0
    out.overheads = out.overheads[1:]   # the first wait includes the engine's DID lookup
    return out
