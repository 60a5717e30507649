"""Shared by the outbound-call tests: a config wired to the real PBX's AMI and FastAGI, an
account with a DID, a webhook receiver on loopback, and waiting for a call's status."""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agi_server.engine import Engine
from tests.engine_support import make_config
from trunx import accounts, db, outbox, redis_client
from trunx.calls import FINAL
from trunx.models import Call, Did

FROM = "+14155559876"
RINGS_THEN_ANSWERS = "+12025550150"   # 180 for 1 s, answers, hangs up 2 s after answering
RINGS_LONG_THEN_ANSWERS = "+12025550185"   # the same with 6 s of ringing
ANSWERS_2S = "+12025550140"           # answers at once, hangs up after 2 s
ANSWERS = "+12025550100"              # answers and stays until we hang up
BUSY = "+12025550110"
NO_ANSWER = "+12025550120"
CONGESTION = "+12025550130"


def outbound_config(tmp_path, redis_url, pbx, **overrides):
    # the webhook receivers of these tests listen on loopback, which the address policy
    # refuses by default: allowed here explicitly, as an operator would
    values = {"agi_port": pbx.agi_port, "ami_port": pbx.ami_port, "ami_user": pbx.ami_user,
              "ami_secret": pbx.ami_secret, "webhook_allow_private": True}
    return make_config(tmp_path, redis_url, **{**values, **overrides})


def make_account(cfg, number: str = FROM, webhook_url: str | None = None):
    db.connect(cfg)
    account = accounts.create_account("outbound-test")
    if webhook_url:
        account.webhook_url = webhook_url
        account.save()
    Did.create(number=number, account=account)
    return account


async def wait_status(call_id: str, statuses=FINAL, timeout: float = 30.0) -> Call:
    async with asyncio.timeout(timeout):
        while True:
            row = Call.get_by_id(call_id)
            if row.status in statuses:
                return row
            await asyncio.sleep(0.05)


def carrier_channels(carrier_ami, number: str) -> list[dict]:
    """Channels the carrier created for calls to `number` (each one a call it received)."""
    return [e for e in carrier_ami.events
            if e.get("Event") == "Newchannel" and e.get("Exten") == number]


class WebhookReceiver:
    """http.server on 127.0.0.1 in a thread. Keeps every request; answers 500 to the first
    `fail_first` attempts of each event id, 200 after."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self.attempts: Counter = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event_id = self.headers.get("X-Trunx-Event-Id", "")
                receiver.attempts[event_id] += 1
                ok = receiver.attempts[event_id] > receiver.fail_first
                receiver.requests.append({"headers": dict(self.headers), "body": body,
                                          "ok": ok})
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/calls"

    def delivered(self) -> list[dict]:
        """Bodies of the accepted deliveries, in arrival order."""
        return [json.loads(r["body"]) for r in self.requests if r["ok"]]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@contextlib.asynccontextmanager
async def engine_running(cfg, tweak=None):
    """Like tests.engine_support.running_engine, with a hook to adjust the engine's parts
    (AMI watchdog timings, webhook backoff) before it starts."""
    aio = redis_client.async_client(cfg.redis_url)     # plain or Sentinel
    sync = redis_client.sync_client(cfg.redis_url)
    engine = Engine(cfg, aio, sync)
    if tweak:
        tweak(engine)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await aio.aclose()
        sync.close()


class AmiProxy:
    """A TCP forwarder between the engine and Asterisk's AMI, so a test can cut the link
    the way a network does. `cut_after(b"Action: Originate")` forwards the next chunk that
    holds those bytes to Asterisk and then drops both sides before any reply gets back;
    `blackhole()` keeps the TCP connection up but stops delivering Asterisk's bytes (a
    hung peer: only a checked ping notices)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.connections = 0
        self.cuts = 0
        self._cut_on: bytes | None = None
        self._blackhole = False
        self._server = None
        self._writers: set = set()

    async def start(self) -> AmiProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    def cut_after(self, marker: bytes) -> None:
        self._cut_on = marker

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    async def stop(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _accept(self, reader, writer) -> None:
        self.connections += 1
        self._blackhole = False
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}
        state = {"cut": False}

        async def downstream():
            while data := await up_reader.read(65536):
                if state["cut"] or self._blackhole:
                    continue
                writer.write(data)
                await writer.drain()

        async def upstream():
            while data := await reader.read(65536):
                if self._cut_on is not None and self._cut_on in data:
                    self._cut_on = None
                    state["cut"] = True        # no reply reaches the engine from now on
                    up_writer.write(data)
                    await up_writer.drain()
                    await asyncio.sleep(0.3)   # Asterisk takes the action ...
                    self.cuts += 1
                    writer.transport.abort()   # ... and the link dies before its reply
                    up_writer.close()
                    return
                up_writer.write(data)
                await up_writer.drain()

        try:
            await asyncio.gather(downstream(), upstream())
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)


def carrier_hold_time(carrier_ami, received: dict) -> float:
    """How long the carrier had the call up, by its own clock: Newstate Up to Hangup."""
    uid = received["Uniqueid"]
    times = {e["Event"]: float(e["Timestamp"]) for e in carrier_ami.events
             if e.get("Uniqueid") == uid and (e.get("Event") == "Hangup" or (
                 e.get("Event") == "Newstate" and e.get("ChannelState") == "6"))}
    return times["Hangup"] - times["Newstate"]


def queue_call(redis, call_id: str, account_id: str) -> None:
    """Queue a stored `initiated` call as POST /api/voice does after its commit: through
    its outbox entry (trunx/outbox.py), the Redis step applied at once."""
    entry = outbox.write(outbox.ORIGINATE, call_id, call_id,
                         outbox.originate_payload(call_id, account_id))
    outbox.deliver(redis, entry)
