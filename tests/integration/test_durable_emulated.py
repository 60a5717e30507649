"""What a killed process leaves behind (trunx/outbox.py, agi_server/engine.py): an inbound
call's row from its start with the path so far, an outbox entry the engine completes once,
a Redis that restarted empty getting the calls in flight back, and `answer_url` webhooks
kept for redelivery. Real Redis, a real SQLite file, the engine over a real socket with a
scripted FastAGI peer (bench.agi_emulator). The whole thing under `kill -9` of real
processes is tests/integration/test_fault_injection.py."""
from __future__ import annotations

import asyncio
import json

import pytest
from flask.testing import FlaskClient

from admin_api import create_app
from bench.agi_emulator import Scenario, run_session
from tests.engine_support import SEED_DID, make_config, running_engine, seed_account
from tests.store_support import store_on
from trunx import accounts, outbox, redis_schema
from trunx.models import Call, CallEvent, Did, OutboxEntry, utcnow

FROM = "+14155559876"


@pytest.fixture
def cfg(tmp_path, redis_server):
    return make_config(tmp_path, redis_server.url, record_checkpoint_interval=0.1,
                       outbox_grace=0.3, webhook_allow_private=True)


async def wait_for(check, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.02)
    return value


async def test_an_inbound_call_has_its_row_from_its_start_and_its_path_as_it_goes(cfg, redis):
    account, _ = seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        session = asyncio.create_task(run_session(
            "127.0.0.1", engine.server.port,
            Scenario(keys=["1", "2"], reply_delay=0.15, caller="+12025550161")))
        started = await wait_for(lambda: Call.get_or_none(Call.from_number == "+12025550161"))
        assert (started.status, started.ended_at, started.account_id) == \
            ("answered", None, account.id)
        # a checkpoint writes the path so far while the call goes on
        walked = await wait_for(lambda: (r := Call.get_by_id(started.id)).path and
                                any(p["node"] == "has_business" for p in r.path) and r)
        assert walked.ended_at is None and walked.status == "answered"
        result = await session
    assert result.error is None
    row = Call.get_by_id(started.id)
    assert (row.status, row.outcome) == ("completed", "hangup")
    assert [p["node"] for p in row.path if p["event"] == "enter"] == \
        ["welcome", "has_business", "unqualified"]
    assert Call.select().count() == 1 and engine.records_saved == 1


def _queued_without_redis(account_id: str) -> Call:
    """What an API worker killed between its commit and the Redis step leaves: the row
    and the outbox entry of place_call's transaction, and nothing in Redis."""
    call = Call.create(account=account_id, direction="outbound", from_number=FROM,
                       to_number="+12025550140", status="initiated", call_sid="CA" + "7" * 32,
                       queued_at=utcnow())
    outbox.write(outbox.ORIGINATE, call.id, call.id, outbox.originate_payload(call.id,
                                                                             account_id))
    return call


async def test_the_engine_queues_a_call_whose_api_worker_died_before_redis(cfg, redis):
    account, _ = seed_account(cfg, redis)
    call = _queued_without_redis(account.id)
    redis.set(redis_schema.SYNCED_KEY, "{}")    # Redis kept its data: no rebuild at start
    async with running_engine(cfg) as engine:   # no AMI here: the dialer holds the call
        await wait_for(lambda: engine.outbox.completed == 1)
        assert await engine.outbox.sweep() == 0     # done once; a second sweep finds nothing
    assert redis.zscore(redis_schema.ORIGINATE_QUEUE, call.id)
    entry = OutboxEntry.get(OutboxEntry.kind == outbox.ORIGINATE)
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1
    # applied again (a worker that died after Redis took it, before marking it done): no-op
    assert outbox.apply(redis, entry.id, entry.kind, entry.payload) == 0
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1


async def test_a_cancelled_call_is_not_queued_by_the_sweep(cfg, redis):
    account, _ = seed_account(cfg, redis)
    call = _queued_without_redis(account.id)
    Call.update(status="failed").where(Call.id == call.id).execute()
    redis.set(redis_schema.SYNCED_KEY, "{}")
    async with running_engine(cfg):
        await wait_for(lambda: OutboxEntry.get(OutboxEntry.kind == outbox.ORIGINATE).done_at)
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 0


def _api(cfg, redis) -> tuple[FlaskClient, dict, str]:
    app = create_app(cfg.replace(webhook_allow_private=True), redis=redis)
    account = accounts.create_account("durable")
    key = accounts.create_key(account)
    Did.create(number=FROM, account=account)
    return app.test_client(), {"Authorization": f"Bearer {key}"}, account.id


async def test_an_empty_redis_gets_queued_calls_actions_and_placed_marks_back(
        cfg, redis, tmp_path):
    from devtools.stack import RedisServer

    with RedisServer(tmp_path / "own-redis") as own:
        cfg = cfg.replace(redis_url=own.url)
        import redis as redis_lib

        r = redis_lib.Redis.from_url(own.url, decode_responses=True)
        seed_account(cfg, r)
        client, auth, account_id = _api(cfg, r)
        queued = client.post("/api/voice", headers=auth,
                             json={"from": FROM, "to": "+12025550141"}).get_json()
        placed = client.post("/api/voice", headers=auth,
                             json={"from": FROM, "to": "+12025550142"}).get_json()
        # the second one was taken by a dialer (its initiated event is written before
        # the Originate): Redis must not make it placeable again
        CallEvent.create(call=placed["id"], type="call.status", status="initiated")
        Call.update(status="ringing").where(Call.id == placed["id"]).execute()
        # an action on a live inbound call, and one that ended
        live = Call.create(account=account_id, direction="inbound", from_number="+1202555",
                           to_number=SEED_DID, status="answered")
        from admin_api.call_actions import service as actions

        pending = actions.enqueue(r, live.id, account_id, "dtmf", {"digits": "1"})
        ended = actions.enqueue(r, live.id, account_id, "dtmf", {"digits": "2"})
        outbox.record_state(ended, {"type": "dtmf", "status": "completed", "call": live.id})
        own.restart()                                   # no persistence: all gone
        assert r.dbsize() == 0
        async with running_engine(cfg) as engine:
            # the pending command is sent again, and the engine takes it: no session here
            # holds the call, so it says so on the action (what a client reads)
            await wait_for(lambda: r.hget(redis_schema.action_key(pending), "status")
                           == "failed")
            assert engine.commands.handled == 1
        assert r.zrange(redis_schema.ORIGINATE_QUEUE, 0, -1) == [queued["id"]]
        assert [f["call"] for _, f in r.xrange(redis_schema.ORIGINATE_STREAM)] == \
            [queued["id"]]
        assert r.get(redis_schema.originated_key(placed["id"])) == "sent"
        assert r.hget(redis_schema.action_key(ended), "status") == "completed"
        r.close()


async def test_an_answer_url_webhook_is_kept_for_redelivery(cfg, redis):
    from agi_server.calls.transfer import _keep
    from agi_server.webhooks import _undelivered

    account, _ = seed_account(cfg, redis)
    call = Call.create(account=account, direction="inbound", from_number="+12025550162",
                       to_number=SEED_DID, status="answered")
    body = json.dumps({"type": "call.transfer", "status": "answered"})
    assert _keep("evt_0123456789abcdef", call.id, "http://127.0.0.1:9/hook", body)
    (job,) = _undelivered(6, "")
    assert (job["event"], job["url"], job["body"]) == \
        ("evt_0123456789abcdef", "http://127.0.0.1:9/hook", body)
    assert not _keep("evt_fedcba9876543210", "no-such-call", "http://127.0.0.1:9/", body)


async def test_an_ivr_version_whose_publish_died_with_its_worker_is_published(cfg, redis):
    from trunx.ivr import store as ivr_store
    from trunx.ivr import tree as ivr_tree

    account, _ = seed_account(cfg, redis)
    redis.set(redis_schema.SYNCED_KEY, "{}")
    current = redis_schema.ivr_current_key(account.id, "qualify-business")
    # save()'s transaction (version 2 and what it owes Redis), and then no publish: the
    # worker died between its commit and its Redis step
    checked = ivr_tree.validate({"nodes": {"only": {"action": "hangup"}}})
    with store_on(redis).db.atomic():
        ivr_store._store(account.id, "qualify-business", checked, cfg, False, set())
        ivr_store._owe(ivr=[account.id, "qualify-business"])
    assert redis.get(current) == "1"
    async with running_engine(cfg) as engine:
        await wait_for(lambda: engine.outbox.completed == 1)
    assert redis.get(current) == "2"
    assert OutboxEntry.select().where(OutboxEntry.done_at.is_null()).count() == 0
