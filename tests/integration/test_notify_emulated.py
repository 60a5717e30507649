"""agi_server/calls/notify.py with an emulated Asterisk (bench/agi_emulator): an account
without a webhook costs its calls no task once that is known; one with a webhook gets
call.started then call.completed, in order, for each call."""
from __future__ import annotations

from devtools.stack import free_port, wait_until_async
from tests.engine_support import make_config, running_engine, seed_account
from tests.integration.outbound_support import WebhookReceiver
from tests.integration.test_engine_emulated import call
from trunx.models import Account, CallEvent


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


async def test_call_started_is_kept_and_sent_after_a_restart(tmp_path, redis_server, redis):
    """Both of a call's events are CallEvents: an engine stopped while its webhook is
    unreachable leaves them undelivered, and the next start sends them, started first."""
    cfg = make_config(tmp_path, redis_server.url, webhook_allow_private=True)
    account, _ = seed_account(cfg, redis)
    down = f"http://127.0.0.1:{free_port()}/hooks/calls"        # nothing listens there
    Account.update(webhook_url=down).where(Account.id == account.id).execute()
    async with running_engine(cfg) as engine:
        _, row = await call(engine, keys=["1", "2"])
        await engine.notify.drain()
    kept = list(CallEvent.select().where(CallEvent.call == row.id).order_by(CallEvent.at))
    assert [(e.type, e.delivered_at) for e in kept] == [("call.started", None),
                                                        ("call.completed", None)]
    with WebhookReceiver() as hooks:
        CallEvent.update(webhook_url=hooks.url).execute()       # the receiver is back
        async with running_engine(cfg) as engine:
            await wait_until_async(lambda: len(hooks.delivered()) == 2, timeout=20,
                                   message="both events redelivered")
    got = hooks.delivered()
    assert [(b["type"], b["id"]) for b in got] == [(e.type, e.id) for e in kept]
    assert got[0]["call"]["id"] == row.id
