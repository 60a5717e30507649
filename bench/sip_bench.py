"""Real SIP, real keys: SIPp callers on the trunk of the shipped configuration.

SIPp (Debian's sip-tester) is the carrier: it sends INVITEs from the carrier's identified
address and port to our PBX (the "load" Asterisk of devtools.stack, as
tests/integration/test_capacity.py runs it), `calls` callers at `rate` per second. Each
caller (bench/sipp/ivr_caller.xml) presses 1 as the welcome prompt ends and 2 as the next
one ends, as RFC 4733 events from the captures sip-tester ships, and waits for the IVR to
hang up. It sends no other RTP unless `echo` (SIPp's `-rtp_echo`: the IVR's audio sent
back, as a phone sends its microphone's). The echo goes out under Asterisk's own SSRC,
interleaved with the captures' packets under another, a stream no carrier sends, and
Asterisk then takes a key's repeated end packets for a second press: with these timings
every one of 4 callers walked has_business > transfer_ai (1 counted twice), 81 in 1,000.
Without it, under load, more callers lose their 2 (274 in 1,000 against 72 with it; the
events reached Asterisk's port: docs/operators.md section 4).
The engine runs in its own process (bench.engine_proc, the demo account: the seed tree,
prompts spoken by espeak-ng). Reported:

- the share of calls whose record (SQLite, read back once all are over) walked welcome >
  has_business > unqualified and ended in the IVR's hangup;
- peak concurrent calls (SIPp's own count, and the engine's);
- CPU per call of Asterisk's and the engine's processes (/proc, over the whole run);
- from the end of a key press (its first end-of-event RTP packet) to the first audio
  packet the caller received after it: bench.rtp_sniff on loopback, 1 call in `sample`.
"""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import Child, cpu_seconds, percentile
from devtools.stack import Asterisk, RedisServer, find_root, free_port
from trunx import config as trunx_config
from trunx import db

DID = "+19495551234"
EXPECTED_NODES = ["welcome", "has_business", "unqualified"]
SCENARIO = Path(__file__).with_name("sipp") / "ivr_caller.xml"
DTMF_DIR = "/usr/share/sip-tester"      # where Debian's sip-tester puts its RFC 4733 captures
# A caller presses a key once the prompt has said what it is for: 1 as the welcome prompt
# (3.6 s) ends, 2 as the next one (3.1 s) ends. Pressing at a fixed time after the answer
# only stands for that while the prompt starts promptly; under load the first prompt's
# first packet reached callers up to 1.3 s after the answer, and the next prompt up to 2.5 s
# after a key (measured at 1,000 callers): a key pressed earlier, before the IVR is reading
# keys, is dropped by Asterisk (between AGI commands res_agi discards the caller's frames)
# and the caller then hears the prompt again. docs/operators.md section 4 has the figures.
FIRST_MS, SECOND_MS = 3500, 3500


def available() -> str | None:
    """Why this bench cannot run here, or None."""
    if shutil.which("sipp") is None:
        return "sipp missing (`make deps` installs sip-tester)"
    if not (Path(DTMF_DIR) / "dtmf_2833_1.pcap").exists():
        return f"no RFC 4733 captures in {DTMF_DIR}"
    if os.geteuid() != 0:
        return "capturing RTP on loopback needs root"
    return None


def _scenario(tmp: str) -> str:
    text = SCENARIO.read_text()
    for key, value in (("FIRST_MS", FIRST_MS), ("SECOND_MS", SECOND_MS),
                       ("BYE_TIMEOUT_MS", 60_000), ("DTMF_DIR", DTMF_DIR)):
        text = text.replace(f"@{key}@", str(value))
    path = os.path.join(tmp, "ivr_caller.xml")
    Path(path).write_text(text)
    return path


def _records(since) -> dict:
    from trunx.models import Call
    rows = list(Call.select().where(Call.to_number == DID, Call.created_at >= since))
    walked = [([p["node"] for p in r.path if p["event"] == "enter"], r.outcome) for r in rows]
    good = sum(1 for nodes, outcome in walked if nodes == EXPECTED_NODES
               and outcome == "hangup")
    wrong: dict[str, int] = {}
    examples: dict[str, str] = {}     # one call's steps for each way off the path
    for row, (nodes, outcome) in zip(rows, walked, strict=True):
        if not (nodes == EXPECTED_NODES and outcome == "hangup"):
            key = f"{' > '.join(nodes)} ({outcome})"
            wrong[key] = wrong.get(key, 0) + 1
            examples.setdefault(key, ", ".join(_step(p) for p in row.path))
    return {"records": len(rows), "expected_path": good, "wrong": wrong,
            "wrong_examples": examples,
            "mean_call_s": sum(r.duration or 0 for r in rows) / len(rows) if rows else None}


def _step(p: dict) -> str:
    """A path step in short: at, node, event and what it says of keys and prompts."""
    extra = "".join(f" {k}={p[k]}" for k in ("digits", "endpos") if p.get(k) is not None)
    return f"{p.get('t', 0):.2f}s {p['node']} {p['event']}{extra}"


def run(calls: int = 1000, rate: int = 100, sample: int = 8, echo: bool = False,
        log=print) -> dict:
    why = available()
    if why:
        raise RuntimeError(why)
    from bench.rtp_sniff import RtpSniffer
    from trunx.models import utcnow

    root = find_root()
    sipp_port = free_port(socket.SOCK_DGRAM)
    media_port = free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory(prefix="trunx-bench-sip-") as tmp, \
            RedisServer(tmp) as rs, \
            Asterisk(root, "load", agi_port=free_port(), carrier_sip_port=sipp_port) as pbx:
        data = os.path.join(tmp, "data")
        settings = {"sounds_dir": str(pbx.sounds_dir_host),
                    "asterisk_sounds_dir": pbx.sounds_dir_in_root,
                    "ami_port": pbx.ami_port, "ami_user": pbx.ami_user,
                    "ami_secret": pbx.ami_secret}
        args = ["--data-dir", data, "--redis-url", rs.url, "--port", str(pbx.agi_port),
                "--seed", "demo"]
        for name, value in settings.items():
            args += ["--set", f"{name}={value}"]
        with Child("bench.engine_proc", *args,
                   stderr_path=os.path.join(tmp, "engine.log")) as engine:
            db.connect(trunx_config.load(env={}, data_dir=data, redis_url=rs.url))
            stats = os.path.join(tmp, "sipp.csv")
            argv = ["sipp", f"127.0.0.1:{pbx.sip_port}", "-sf", _scenario(tmp), "-s", DID,
                    "-i", "127.0.0.1", "-p", str(sipp_port), "-mi", "127.0.0.1",
                    "-mp", str(media_port), *(["-rtp_echo"] if echo else []),
                    "-m", str(calls), "-l", str(calls), "-r", str(rate),
                    "-nostdin", "-timeout", f"{60 + 2 * calls // rate}s", "-timeout_error",
                    "-trace_stat", "-stf", stats, "-fd", "1"]
            since = utcnow()
            engine.ask("peak", reset=True)
            cpu0, ast0 = engine.ask("stats")["cpu"], cpu_seconds(pbx.pid)
            t0 = time.perf_counter()
            with RtpSniffer(media_port, pbx.rtp_start, pbx.rtp_end, sample) as sniff:
                done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp,
                                      timeout=120 + 3 * calls // rate)
            elapsed = time.perf_counter() - t0
            cpu1, ast1 = engine.ask("stats")["cpu"], cpu_seconds(pbx.pid)
            peak_engine = engine.ask("peak")["peak"]
            deadline = time.monotonic() + 30
            while True:        # the last records are written by the engine's group commit
                rec = _records(since)
                if rec["records"] >= calls or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            engine_errors = engine.ask("stats")["server"].get("errors", 0)
        with open(stats) as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1] if rows else {}
    presses = sniff.key_to_prompt("12")
    measured = [p["ms"] for p in presses if p["ms"] is not None]
    n = max(1, rec["records"])
    result = {
        "calls": calls, "rate": rate, "sample": sample, "elapsed": elapsed,
        "sipp_returncode": done.returncode,
        "sipp_ok": int(last.get("SuccessfulCall(C)", 0)),
        "sipp_failed": int(last.get("FailedCall(C)", 0)),
        "sipp_peak": max((int(r["CurrentCall"]) for r in rows), default=0),
        "peak_engine": peak_engine, **rec, "engine_errors": engine_errors,
        "engine_cpu_ms_per_call": (cpu1 - cpu0) / n * 1000,
        "asterisk_cpu_ms_per_call": (ast1 - ast0) / n * 1000,
        "presses_sampled": len(presses), "presses_measured": len(measured),
        "key_to_prompt_p50_ms": percentile(measured, 50),
        "key_to_prompt_p99_ms": percentile(measured, 99),
        "packets_captured": sniff.packets,
        "sipp_tail": done.stdout[-1500:] if done.returncode else "",
    }
    log(f"  sip {result['expected_path']}/{calls} on the expected path, peak "
        f"{result['sipp_peak']} (engine {peak_engine}), engine "
        f"{result['engine_cpu_ms_per_call']:.2f} ms / Asterisk "
        f"{result['asterisk_cpu_ms_per_call']:.2f} ms CPU per call, key -> prompt p50 "
        f"{result['key_to_prompt_p50_ms']} p99 {result['key_to_prompt_p99_ms']} ms "
        f"({len(measured)} presses)")
    return result
