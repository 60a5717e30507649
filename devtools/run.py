"""`make run`: the whole stack on embedded defaults, with a demo call through it.

Starts Redis (unless TRUNX_REDIS_URL points at one), an Asterisk from the cached root with
trunx's config and dialplan, a second Asterisk behind its trunk playing the carrier (the
sandbox numbers below), the engine (in this process) and the admin API (gunicorn).
Creates a demo account and key, publishes the IVR seed's tree on +19495551234 with spoken
prompts, places a call through Asterisk that presses 1 then 2, and prints the path it took.
Then it stays up until Ctrl-C (or exits at once with --once, as the tests run it).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from agi_server.engine import Engine, loop_factory
from devtools.demo import DEMO_DID, demo_account, publish_demo, stage_prompts
from devtools.stack import Asterisk, RedisServer, find_root, free_port, wait_until
from devtools.stack.ami import AmiClient, originate_local
from trunx import accounts, redis_client
from trunx import config as trunx_config
from trunx.models import Call
from trunx.store import Store

log = logging.getLogger("trunx.run")
# The sandbox carrier's numbers (devtools/stack/dialplan/carrier.conf), as README's "Try it"
# documents them: an outbound call to each ends as said here.
SANDBOX = (
    ("+12025550160", "answers, says \"Hello world\", hangs up: completed (callee-hangup)"),
    ("+12025550110", "busy: failed (busy)"),
    ("+12025550120", "rings, never answers: failed (no-answer) after originate_timeout"),
    ("+12025550170", "voicemail: a greeting ending in a beep, hangs up 10 s later: "
                     "completed (callee-hangup)"),
)
DEMO_STEPS = "w1-d1-w1.5-d2"     # press 1 (a business owner), then 2 (not qualified)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


async def demo_call(pbx: Asterisk) -> Call:
    async with AmiClient(pbx.ami_port, pbx.watch_user, pbx.ami_secret) as ami:
        call = await originate_local(ami, DEMO_DID, DEMO_STEPS,
                                     caller_id="Demo caller <+12025550123>")
        async with asyncio.timeout(60):
            while (row := Call.get_or_none(Call.uniqueid == call.callee_id,
                                           Call.ended_at.is_null(False))) is None:
                await asyncio.sleep(0.2)
    return row


def describe(row: Call) -> str:
    lines = [f"call {row.id} from {row.from_number} to {row.to_number}: "
             f"IVR {row.ivr_id} v{row.ivr_version}, outcome {row.outcome}, "
             f"{row.duration:.1f} s"]
    for step in row.path:
        extra = {k: v for k, v in step.items() if k not in ("node", "event", "t")}
        lines.append(f"  {step['t']:6.2f}s  {step['node']:<14} {step['event']:<10} "
                     + " ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(lines)


async def run(once: bool) -> int:
    cfg = trunx_config.load()
    async with AsyncExitStack() as stack:
        if "TRUNX_REDIS_URL" not in os.environ:
            workdir = Path(cfg.data_dir) / "redis"
            workdir.mkdir(parents=True, exist_ok=True)
            server = stack.enter_context(RedisServer(workdir, persistent=True))
            cfg = cfg.replace(redis_url=server.url)
        agi_port = cfg.agi_port if _port_free(cfg.agi_port) else free_port()
        root = find_root()
        pbx = stack.enter_context(Asterisk(root, "run", agi_port=agi_port))
        carrier = stack.enter_context(Asterisk(root, "runcarrier", role="carrier",
                                               sip_port=pbx.carrier_sip_port,
                                               pbx_sip_port=pbx.sip_port))
        # A sounds folder that outlives this Asterisk instance, so that the IVR versions in
        # a persistent database keep pointing at files that exist on the next run.
        sounds_in_root = "/var/lib/trunx/sounds"
        cfg = cfg.replace(agi_port=agi_port, sounds_dir=str(root / sounds_in_root.lstrip("/")),
                          asterisk_sounds_dir=sounds_in_root, ami_port=pbx.ami_port,
                          ami_user=pbx.ami_user, ami_secret=pbx.ami_secret)
        print(f"asterisk  up in {pbx.boot_seconds:.1f} s (AMI 127.0.0.1:{pbx.ami_port}, "
              f"SIP 127.0.0.1:{pbx.sip_port})")
        print(f"carrier   up in {carrier.boot_seconds:.1f} s (the sandbox behind the trunk, "
              f"SIP 127.0.0.1:{carrier.sip_port})")

        store = Store.open(cfg)
        stack.callback(store.redis.close)
        account = demo_account()
        key = accounts.create_key(account, name="make run")
        stage_prompts(account, cfg)
        publish_demo(store, account, cfg)

        if cfg.engine_http_port > 0 and not _port_free(cfg.engine_http_port):
            # health and metrics: another port
            cfg = cfg.replace(engine_http_port=free_port())
        aio = redis_client.async_client(cfg.redis_url)
        engine = Engine(cfg, aio, store=store)
        await engine.start()
        stack.push_async_callback(aio.aclose)
        stack.push_async_callback(engine.stop)
        await engine.cache.wait_listening()
        print(f"engine    FastAGI on 127.0.0.1:{engine.server.port}")
        if engine.health is not None:
            print(f"          health and metrics on http://127.0.0.1:{engine.health.port}")

        api_port = cfg.api_port if _port_free(cfg.api_port) else free_port()
        env = {**os.environ, **_env_for(cfg)}
        # the shipped settings (admin_api/gunicorn_conf.py); only the bind and log level
        # are this run's own
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf",
                "-b", f"127.0.0.1:{api_port}", "--log-level", "warning", "admin_api.wsgi:app"]
        api = subprocess.Popen(argv, env=env)  # noqa: ASYNC220  (starts it; never waits)
        stack.callback(_stop, api)
        wait_until(lambda: api.poll() is not None or not _port_free(api_port), timeout=20)
        if api.poll() is not None:
            raise SystemExit(f"the admin API exited at start (code {api.returncode})")
        print(f"api       http://127.0.0.1:{api_port}  (account {account.id})")

        row = await demo_call(pbx)
        print("\ndemo call through Asterisk, pressing 1 then 2:\n" + describe(row))
        base = f"http://127.0.0.1:{api_port}"
        auth = f"-H 'Authorization: Bearer {key}'"
        print(f"\ntry it:\n  curl {auth} {base}/ivr/qualify-business")
        print(f"\nsandbox numbers (outbound calls from {DEMO_DID}):")
        for number, what in SANDBOX:
            print(f"  {number}  {what}")
        print(f"  curl {auth} -H 'Content-Type: application/json' "
              f"-d '{{\"from\": \"{DEMO_DID}\", \"to\": \"{SANDBOX[0][0]}\"}}' "
              f"{base}/api/voice")
        print(f"  the console: {base}/console/ (sign in with the key)")
        ok = row.path and row.outcome == "hangup" and \
            [p["node"] for p in row.path if p["event"] == "enter"] == \
            ["welcome", "has_business", "unqualified"]
        if not once:
            print("\nrunning; Ctrl-C stops everything")
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
    return 0 if ok else 1


def _env_for(cfg) -> dict:
    """The engine's effective settings, handed to the API workers through the environment."""
    keys = ("data_dir", "redis_url", "sounds_dir", "asterisk_sounds_dir", "agi_port",
            "ami_port")
    return {f"TRUNX_{k.upper()}": str(getattr(cfg, k)) for k in keys}


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _raise_open_files() -> None:
    """The engine runs in this process with a FastAGI socket per call: a shell's usual soft
    limit of 1,024 open files would stop `make run` short of 1,000 calls."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.run", description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after the demo call")
    args = parser.parse_args(argv)
    _raise_open_files()
    logging.basicConfig(level=logging.WARNING)
    with asyncio.Runner(loop_factory=loop_factory(trunx_config.load().agi_event_loop)) as r:
        sys.exit(r.run(run(args.once)))


if __name__ == "__main__":
    main()
