"""Call-status webhooks on real calls: a receiver on loopback gets every status of a call
exactly once, in order, signed, even when it fails the first attempt of each."""
from __future__ import annotations

import json

import pytest

from admin_api.voice import service as voice_service
from tests.integration.outbound_support import (
    BUSY,
    FROM,
    RINGS_THEN_ANSWERS,
    WebhookReceiver,
    engine_running,
    make_account,
    outbound_config,
    wait_status,
)
from tests.store_support import store_on
from trunx import webhook_sign
from trunx.models import Account, CallEvent

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx, originate_timeout=3)


def quick_retries(engine):
    engine.webhooks.base_delay = 0.2


def check_signed(request, secret):
    h = request["headers"]
    assert webhook_sign.verify(secret, h["X-Trunx-Timestamp"], request["body"],
                               h["X-Trunx-Signature"])


@pytest.mark.parametrize("fail_first", [0, 1])
async def test_every_status_once_in_order_and_signed(cfg, redis, fail_first):
    with WebhookReceiver(fail_first=fail_first) as receiver:
        account = make_account(cfg)
        async with engine_running(cfg, quick_retries) as engine:
            call = voice_service.place_call(store_on(redis), account.id, FROM, RINGS_THEN_ANSWERS,
                                    config=cfg, webhook_url=receiver.url)
            await wait_status(call.id)
            await engine.webhooks.drain()
        secret = Account.get_by_id(account.id).webhook_secret
        delivered = receiver.delivered()
    assert [d["status"] for d in delivered] == ["initiated", "ringing", "answered",
                                                "completed"]
    assert len({d["id"] for d in delivered}) == 4
    assert len(receiver.requests) == 4 * (1 + fail_first)
    for request in receiver.requests:
        check_signed(request, secret)
    last = delivered[-1]
    assert last["type"] == "call.status" and last["callId"] == call.call_sid
    assert last["call"]["id"] == call.id and last["call"]["status"] == "completed"
    assert last["call"]["duration"] == round(voice_service.get_owned(account.id, call.id).duration)
    assert delivered[2]["call"]["status"] == "answered"     # each a snapshot of its moment
    events = list(CallEvent.select().where(CallEvent.call == call.id))
    assert all(e.delivered_at is not None and e.attempts == 1 + fail_first for e in events)


async def test_account_default_url_and_the_operator_secret(cfg, redis):
    cfg = cfg.replace(webhook_secret="operator-secret")
    with WebhookReceiver() as receiver:
        account = make_account(cfg, webhook_url=receiver.url)
        async with engine_running(cfg) as engine:
            call = voice_service.place_call(store_on(redis), account.id, FROM, BUSY, config=cfg)
            await wait_status(call.id)
            await engine.webhooks.drain()
    assert [json.loads(r["body"])["status"] for r in receiver.requests] == ["initiated",
                                                                           "failed"]
    for request in receiver.requests:
        check_signed(request, "operator-secret")
    assert json.loads(receiver.requests[-1]["body"])["call"]["endReason"] == "busy"


async def test_a_receiver_that_never_answers_is_given_up_without_delaying_calls(cfg, redis):
    with WebhookReceiver(fail_first=100) as receiver:
        account = make_account(cfg)

        def tweak(engine):
            engine.webhooks.base_delay, engine.webhooks.max_attempts = 0.1, 3

        async with engine_running(cfg, tweak) as engine:
            call = voice_service.place_call(store_on(redis), account.id, FROM, BUSY, config=cfg,
                                    webhook_url=receiver.url)
            row = await wait_status(call.id, timeout=10)
            await engine.webhooks.drain()
            assert engine.webhooks.stats["given_up"] == 2
    assert row.status == "failed" and len(receiver.requests) == 6
    assert {e.last_error for e in CallEvent.select()} == {"HTTP 500"}
