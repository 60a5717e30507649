"""agi_server/calls/notify.py with an emulated Asterisk (bench/agi_emulator): an account
without a webhook costs its calls no task once that is known; one with a webhook gets
call.started then call.completed, in order, for each call."""
from __future__ import annotations

from tests.engine_support import make_config, running_engine, seed_account
from tests.integration.outbound_support import WebhookReceiver
from tests.integration.test_engine_emulated import call
from trunx.models import Account


async def test_no_webhook_no_work_and_with_one_both_events_in_order(tmp_path, redis_server,
                                                                    redis):
    # the receiver is on loopback, which webhooks reach only when the operator allows it
    cfg = make_config(tmp_path, redis_server.url, webhook_allow_private=True)
    account, _ = seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        await call(engine, keys=["1", "2"])
        await engine.notify.drain()
        assert not engine.notify.wants(account.id)       # known: no URL
        await call(engine, keys=["1", "2"])
        assert not engine.notify._tasks and not engine.notify._started
        assert engine.webhooks.stats["delivered"] == 0

    with WebhookReceiver() as hooks:
        Account.update(webhook_url=hooks.url).where(Account.id == account.id).execute()
        async with running_engine(cfg) as engine:
            rows = [(await call(engine, keys=["1", "2"]))[1] for _ in range(2)]
            await engine.notify.drain()
            await engine.webhooks.drain()
    got = [(b["type"], b["call"]["id"]) for b in hooks.delivered()]
    for row in rows:
        mine = [t for t, call_id in got if call_id == row.id]
        assert mine == ["call.started", "call.completed"]
    assert len(got) == 4
