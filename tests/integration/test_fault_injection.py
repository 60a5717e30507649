"""`kill -9` at 20 random points of a mixed workload: 0 lost rows, 0 duplicate calls, 0 lost
webhooks (issue 13, "Nothing lost on kill -9"; docs/architecture.md says what a kill can
and cannot lose).

Real processes on the real path: the API under gunicorn (one gthread worker, which the
master brings back after each kill), the engine as `python -m agi_server` (started again by
the test after each kill), real Redis, one SQLite file, our PBX Asterisk and the test carrier
over SIP. The workload: outbound calls through POST /api/voice (the carrier answers and hangs
up 2 s later) with status webhooks to a receiver in this process, inbound IVR calls on the
PBX, and DTMF actions on answered outbound calls. A seeded RNG picks the kill times and
victims; the seed is printed (TRUNX_FAULT_SEED replays a run).

At the end, with both processes back:
- every number the carrier received is a Call row, and every inbound call the engine
  answered (its channel went Up: only the engine answers) has its row;
- the carrier received each number at most once;
- every outbound call reaches a final status, including those whose POST got no answer (a
  kill between the row and the queue is completed by the engine's outbox sweep);
- every status event stored for a call with a webhook reached the receiver.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from devtools.stack import free_port
from devtools.stack.ami import originate_local
from tests.engine_support import make_config
from tests.store_support import store_on
from trunx import accounts, db
from trunx.calls import FINAL
from trunx.ivr import store as ivr_store
from trunx.models import Call, CallEvent, Did

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

FROM = "+14155559876"
DID = "+19495550177"
TREE = {"nodes": {"welcome": {"audio": "hello-world", "gather": {"1": "bye"}},
                  "bye": {"action": "hangup", "audio": "vm-goodbye"}}}
KILLS = 20
WORKLOAD = 30.0          # seconds of traffic; the kills fall inside it
MIN_UP = 0.7             # seconds a process serves before it is killed again (a kill of a
                         # process still starting would test its start, not what it holds)


class Receiver:
    """The webhook receiver: every event id it was sent, with how often."""

    def __init__(self):
        self.seen: dict[str, int] = {}
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    event = json.loads(body).get("id", "")
                    outer.seen[event] = outer.seen.get(event, 0) + 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Proc:
    """One of the two processes under test, started again after each kill."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path, ready_url: str):
        self.name, self.argv, self.env, self.log, self.ready_url = name, argv, env, log, ready_url
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        self.up_since: float | None = None     # when it was first seen serving

    def start(self) -> None:
        with open(self.log, "a") as out:       # the child keeps its own copy
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out)

    def ready(self) -> bool:
        try:
            return requests.get(self.ready_url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert time.monotonic() < deadline, f"{self.name} did not come up: {self.log}"
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
            time.sleep(0.05)
        if self.up_since is None:
            self.up_since = time.monotonic()

    def victim(self) -> int:
        """The pid a kill -9 takes: the engine itself, or the API's one worker."""
        if self.name == "engine":
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def kill9(self) -> None:
        os.kill(self.victim(), signal.SIGKILL)
        self.kills += 1
        self.up_since = None
        if self.name == "engine":
            self.proc.wait()
            self.start()        # gunicorn's master brings its worker back by itself

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def numbers(rng: random.Random):
    """Distinct numbers the carrier answers and hangs up 2 s later (+1NXX555014X)."""
    areas = [a for a in range(201, 990) if a % 100 != 11]
    rng.shuffle(areas)
    for area in areas:
        for last in range(10):
            yield f"+1{area}555014{last}"


@pytest.fixture
def stack(tmp_path, redis_server, pbx, carrier):
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ami_port=pbx.ami_port, ami_user=pbx.ami_user, ami_secret=pbx.ami_secret,
                      webhook_allow_private=True)
    db.connect(cfg)
    account = accounts.create_account("faults")
    key = accounts.create_key(account)
    Did.create(number=FROM, account=account)
    import redis as redis_lib

    r = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    ivr, _, _ = ivr_store.save(store_on(r), account.id, "faults", TREE, cfg, create=True)
    ivr_store.assign(store_on(r), ivr, Did.create(number=DID, account=account))
    r.close()
    api_port, engine_http = free_port(), free_port()
    env = {**os.environ, "TRUNX_DATA_DIR": cfg.data_dir, "TRUNX_REDIS_URL": redis_server.url,
           "TRUNX_AGI_PORT": str(pbx.agi_port), "TRUNX_AMI_PORT": str(pbx.ami_port),
           "TRUNX_AMI_USER": pbx.ami_user, "TRUNX_AMI_SECRET": pbx.ami_secret,
           "TRUNX_ENGINE_HTTP_PORT": str(engine_http),
           "TRUNX_AUDIOSOCKET_PORT": str(free_port()), "TRUNX_WEBHOOK_ALLOW_PRIVATE": "1",
           "TRUNX_OUTBOX_GRACE": "1", "TRUNX_RECORD_CHECKPOINT_INTERVAL": "1",
           "TRUNX_ORIGINATE_CPS": "20"}
    engine = Proc("engine", [sys.executable, "-m", "agi_server"], env,
                  tmp_path / "engine.log", f"http://127.0.0.1:{engine_http}/healthz")
    api = Proc("api", [sys.executable, "-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf",
                       "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{api_port}",
                       "admin_api.wsgi:app"],
               env, tmp_path / "api.log", f"http://127.0.0.1:{api_port}/healthz")
    engine.start()
    api.start()
    try:
        engine.wait_ready()
        api.wait_ready()
        yield {"engine": engine, "api": api, "base": f"http://127.0.0.1:{api_port}",
               "auth": {"Authorization": f"Bearer {key}"}, "account": account.id}
    finally:
        api.stop()
        engine.stop()


async def test_kill_9_at_20_random_points_loses_nothing(stack, pbx_ami, carrier_ami):
    seed = int(os.environ.get("TRUNX_FAULT_SEED") or random.randrange(1 << 32))
    print(f"fault-injection seed: {seed} (TRUNX_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    hooks = Receiver()
    base, auth = stack["base"], stack["auth"]
    to_numbers = numbers(rng)
    accepted: dict[str, str] = {}            # call id -> number, answered 201
    tried: list[str] = []                    # every number a POST asked for
    inbound: list = []                       # originated inbound calls
    actions = {"ok": 0, "refused": 0, "lost": 0}
    t0 = time.monotonic()

    def post(path: str, body: dict):
        return requests.post(base + path, json=body, headers=auth, timeout=10)

    async def place_calls():
        while time.monotonic() - t0 < WORKLOAD:
            number = next(to_numbers)
            tried.append(number)
            try:
                res = await asyncio.to_thread(post, "/api/voice", {
                    "from": FROM, "to": number, "webhookUrl": hooks.url})
                if res.status_code == 201:
                    accepted[res.json()["id"]] = number
                else:     # a 5xx while a worker dies is fair; a 4xx is not
                    assert res.status_code >= 500, res.text
            except requests.RequestException:
                pass      # killed mid-request: the call may or may not exist
            await asyncio.sleep(rng.uniform(0.2, 0.6))

    async def call_in():
        n = 0
        while time.monotonic() - t0 < WORKLOAD:
            n += 1
            inbound.append(await originate_local(
                pbx_ami, DID, "w1-d1-w4", caller_id=f"In <+1202555{n:04d}>"))
            await asyncio.sleep(rng.uniform(0.3, 0.8))

    async def act():
        done: set = set()
        while time.monotonic() - t0 < WORKLOAD:
            await asyncio.sleep(1.0)
            for call_id in list(accepted):
                row = Call.get_or_none(Call.id == call_id)
                if call_id in done or row is None or row.status != "answered":
                    continue
                done.add(call_id)
                try:
                    res = await asyncio.to_thread(
                        post, f"/v1/voice/accounts/{stack['account']}/calls/{call_id}/dtmf",
                        {"digits": "1"})
                    actions["ok" if res.status_code == 200 else "refused"] += 1
                    assert res.status_code in (200, 409) or res.status_code >= 500, res.text
                except requests.RequestException:
                    actions["lost"] += 1

    async def kill():
        times = sorted(rng.uniform(2.0, WORKLOAD - 2.0) for _ in range(KILLS))
        for at in times:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            victim = stack[rng.choice(("api", "engine"))]
            await asyncio.to_thread(victim.wait_ready)
            await asyncio.sleep(max(0.0, victim.up_since + MIN_UP - time.monotonic()))
            victim.kill9()

    await asyncio.gather(place_calls(), call_in(), act(), kill())
    await asyncio.to_thread(stack["engine"].wait_ready)
    await asyncio.to_thread(stack["api"].wait_ready)
    kills = {name: stack[name].kills for name in ("api", "engine")}
    print(f"kills: {kills}; POSTs {len(tried)}, accepted {len(accepted)}; inbound "
          f"{len(inbound)}; actions {actions}")
    assert sum(kills.values()) == KILLS

    # every outbound call ends, those whose POST got no answer too (the outbox sweep
    # queues a call a kill stranded between its row and Redis)
    async with asyncio.timeout(40):
        while Call.select().where(Call.direction == "outbound",
                                  Call.status.not_in(FINAL)).exists():
            await asyncio.sleep(0.2)
    swept = stack["engine"].log.read_text().count("completed by the engine")

    # 0 duplicate calls: the carrier received each number at most once
    received = [e.get("Exten") for e in carrier_ami.events
                if e.get("Event") == "Newchannel" and e.get("Exten") in set(tried)]
    twice = {n for n in received if received.count(n) > 1}
    assert not twice, f"dialled more than once: {twice}"
    # 0 lost rows: each number the carrier received, each inbound call the engine answered
    rows = {c.to_number for c in Call.select(Call.to_number).where(Call.direction == "outbound")}
    assert set(received) <= rows
    assert set(accepted.values()) <= rows
    answered = {e.get("Uniqueid") for e in pbx_ami.events
                if e.get("Event") == "Newstate" and e.get("ChannelState") == "6"}
    reached = [c.callee_id for c in inbound if c.callee_id in answered]
    kept = {c.uniqueid for c in Call.select(Call.uniqueid).where(Call.direction == "inbound")}
    assert reached and set(reached) <= kept, set(reached) - kept
    # 0 lost webhooks: every status event of our calls reached the receiver
    owed = {e.id for e in CallEvent.select(CallEvent.id).where(
        CallEvent.webhook_url == hooks.url)}
    async with asyncio.timeout(40):
        while owed - set(hooks.seen):
            await asyncio.sleep(0.2)
    assert len(owed) >= 2 * len(accepted)     # at least initiated and a final status each
    print(f"carrier received {len(received)} numbers, each once; {len(reached)} inbound "
          f"calls answered, each with its row; {len(owed)} webhooks delivered; "
          f"{swept} outbox entries completed by the engine")
