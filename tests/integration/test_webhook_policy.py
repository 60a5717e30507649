"""The webhook sender at send time (agi_server/webhooks.py, webhook_http.py), with real
HTTP receivers on loopback and a real SQLite record: loopback is refused by default and
reached once the operator allows it; a receiver that trickles its answer is cut off at the
deadline and holds back only its own account; redirects are not followed; credentials in
a URL are sent as basic auth and masked in the log."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agi_server.webhooks import WebhookSender
from tests.engine_support import make_config
from trunx import db


class Receiver:
    """http.server on 127.0.0.1: answers `status`, or trickles one byte per `trickle` s."""

    def __init__(self, status: int = 200, trickle: float | None = None,
                 headers: dict | None = None):
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                if trickle is not None:
                    try:
                        for byte in b"HTTP/1.1 200 OK\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(trickle)   # the misbehaving peer under test
                    except OSError:
                        pass
                    return
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def database_thread(tmp_path, redis_server):
    cfg = make_config(tmp_path, redis_server.url)
    pool = ThreadPoolExecutor(1)
    pool.submit(db.connect, cfg).result()
    yield cfg, pool
    pool.shutdown()


def sender(cfg, pool, **kwargs) -> WebhookSender:
    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    return WebhookSender(cfg, run, base_delay=0.05, **kwargs)


def job(url: str, account: str, n: int = 0) -> dict:
    return {"event": f"evt_{account}_{n}", "call": f"call_{account}_{n}", "account": account,
            "url": url, "body": '{"type":"call.status"}', "secret": "whsec_test"}


async def test_loopback_is_refused_by_default_and_reached_once_allowed(database_thread):
    cfg, pool = database_thread
    assert cfg.webhook_allow_private is False        # the default an operator gets
    with Receiver() as hooks:
        refused = sender(cfg, pool, max_attempts=2)
        refused.submit(job(hooks.url, "acc_a"))
        await refused.drain(10)
        assert hooks.requests == []
        assert refused.stats["given_up"] == 1 and refused.stats["delivered"] == 0

        allowed = sender(cfg.replace(webhook_allow_private=True), pool, max_attempts=2)
        allowed.submit(job(hooks.url, "acc_a"))
        await allowed.drain(10)
        assert len(hooks.requests) == 1 and allowed.stats["delivered"] == 1
        assert hooks.requests[0]["headers"]["X-Trunx-Event-Id"] == "evt_acc_a_0"


async def test_a_trickling_receiver_is_cut_off_and_delays_no_other_account(database_thread):
    cfg, pool = database_thread
    cfg = cfg.replace(webhook_allow_private=True)
    with Receiver(trickle=0.3) as slow, Receiver() as fast:
        out = sender(cfg, pool, max_attempts=1, timeout=1.5)
        start = time.monotonic()
        for n in range(4):        # more of A's than its lanes: they queue behind each other
            out.submit(job(slow.url, "acc_a", n))
        out.submit(job(fast.url, "acc_b"))
        await out.drain(20)
        elapsed = time.monotonic() - start
    # B's webhook went at once, while A's receiver was holding both of A's lanes
    assert len(fast.requests) == 1 and fast.requests[0]["at"] - start < 1.0
    # A's four were each cut off at the 1.5 s deadline (no answer ever completes), two at a
    # time: about 3 s, not 4 x 17 bytes x 0.3 s
    assert out.stats["given_up"] == 4 and out.stats["delivered"] == 1
    assert 2.9 < elapsed < 6.0


async def test_redirects_are_not_followed(database_thread):
    cfg, pool = database_thread
    cfg = cfg.replace(webhook_allow_private=True)
    with Receiver() as target:
        with Receiver(status=302, headers={"Location": target.url}) as redirecting:
            out = sender(cfg, pool, max_attempts=1)
            out.submit(job(redirecting.url, "acc_a"))
            await out.drain(10)
    assert len(redirecting.requests) == 1 and target.requests == []
    assert out.stats["given_up"] == 1


async def test_credentials_go_as_basic_auth_and_are_masked_in_the_log(database_thread,
                                                                      caplog):
    cfg, pool = database_thread
    cfg = cfg.replace(webhook_allow_private=True)
    with Receiver(status=500) as hooks:
        url = hooks.url.replace("http://", "http://hook-user:s3cret@")
        out = sender(cfg, pool, max_attempts=1)
        with caplog.at_level(logging.INFO, logger="agi_server.webhooks"):
            out.submit(job(url, "acc_a"))
            await out.drain(10)
    assert hooks.requests[0]["headers"]["Authorization"] == "Basic aG9vay11c2VyOnMzY3JldA=="
    assert "s3cret" not in caplog.text and "***@127.0.0.1" in caplog.text


async def test_after_a_rotation_old_and_new_secrets_both_verify_until_the_overlap_ends(
        database_thread):
    from trunx import calls, webhook_sign
    from trunx.models import Account

    cfg, pool = database_thread
    cfg = cfg.replace(webhook_allow_private=True)

    def setup():
        account = Account.create(name="rotating")
        old = calls.ensure_webhook_secret(account.id)
        calls.rotate_webhook_secret(account.id, overlap_seconds=60)
        return account.id, old, calls.webhook_secrets(account.id)

    account_id, old, signing = pool.submit(setup).result()
    new = signing[0]
    assert signing == (new, old) and new != old
    with Receiver() as hooks:
        out = sender(cfg, pool, max_attempts=1)
        out.submit({**job(hooks.url, account_id), "secret": signing})
        await out.drain(10)
    (request,) = hooks.requests
    headers = request["headers"]
    for secret in (old, new):           # a receiver holding either secret accepts it
        assert webhook_sign.verify(secret, headers["X-Trunx-Timestamp"], request["body"],
                                   headers["X-Trunx-Signature"])
    assert not webhook_sign.verify("whsec_other", headers["X-Trunx-Timestamp"],
                                   request["body"], headers["X-Trunx-Signature"])

    def expire():
        calls.rotate_webhook_secret(account_id, overlap_seconds=-1)   # overlap over
        return calls.webhook_secrets(account_id)

    (only,) = pool.submit(expire).result()
    assert only not in (old, new)
