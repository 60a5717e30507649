"""trunx.voice_service.place_call, the one way a call is placed (the API and agent calls use it)."""
from __future__ import annotations

import pytest

from admin_api.voice import service as voice_service
from tests.store_support import store_on
from trunx import dnc, errors, redis_schema
from trunx.models import Call, Did

FROM, TO = "+14155559876", "+14155551234"


@pytest.fixture
def did(tenant):
    return Did.create(number=FROM, account=tenant.id)


def test_a_plain_call_is_stored_and_queued(tenant, did, redis, config):
    call = voice_service.place_call(store_on(redis), tenant.id, FROM, TO, metadata={"crm": "42"},
                            config=config)
    row = Call.get_by_id(call.id)
    assert (row.status, row.direction, row.provider) == ("initiated", "outbound", "asterisk")
    assert row.call_sid.startswith("CA") and len(row.call_sid) == 34
    assert row.metadata == {"crm": "42"} and row.ai is None
    (entry,) = redis.xrange(redis_schema.ORIGINATE_STREAM)
    assert entry[1] == {"call": call.id, "account": tenant.id}
    assert voice_service.queue_position(redis, call.id) == 1
    second = voice_service.place_call(store_on(redis), tenant.id, FROM, TO, config=config)
    assert voice_service.queue_position(redis, second.id) == 2


@pytest.mark.parametrize("kwargs, field, code", [
    ({"from_number": "4155559876"}, "from", "invalid-number"),
    ({"to_number": "+1415555123"}, "to", "invalid-number"),
    ({"from_number": "+14155550000"}, "from", "unknown-did"),
    ({"max_duration": "5 minutes"}, "maxDuration", "invalid-duration"),
    ({"max_duration": "0s"}, "maxDuration", "out-of-range"),
    ({"metadata": {"a": 1}}, "metadata.a", "invalid-type"),
    ({"webhook_url": "ftp://x"}, "webhookUrl", "invalid-url"),
    ({"ai": {"voice": "Mark"}}, "systemPrompt", "required"),
    ({"ai": {"systemPrompt": "hi", "temperature": 1.5}}, "temperature", "out-of-range"),
    ({"ai": {"systemPrompt": "hi", "firstSpeaker": "bot"}}, "firstSpeaker", "invalid-value"),
    ({"ai": {"systemPrompt": "hi", "tools": [{"description": "d"}]}},
     "tools[0].modelToolName", "required"),
])
def test_invalid_input_names_the_field_and_writes_nothing(tenant, did, redis, config, kwargs,
                                                           field, code):
    args = {"from_number": FROM, "to_number": TO, **kwargs}
    with pytest.raises(errors.InvalidInput) as err:
        voice_service.place_call(store_on(redis), tenant.id, args.pop("from_number"),
                         args.pop("to_number"), config=config, **args)
    assert err.value.code == "invalid-request"
    assert [(p["field"], p["code"]) for p in err.value.details] == [(field, code)]
    assert Call.select().count() == 0 and not redis.exists(redis_schema.ORIGINATE_STREAM)


def test_a_suppressed_number_is_refused(tenant, did, redis, config):
    dnc.suppress(tenant.id, TO, source="api", redis=redis)
    with pytest.raises(errors.Forbidden) as err:
        voice_service.place_call(store_on(redis), tenant.id, FROM, TO, config=config)
    assert (err.value.code, err.value.details) == ("number-suppressed",
                                                   {"field": "to", "number": TO})
    assert Call.select().count() == 0


def test_ai_calls_need_the_ultravox_key(tenant, did, redis, config):
    with pytest.raises(errors.NotConfigured) as err:
        voice_service.place_call(store_on(redis), tenant.id, FROM, TO, ai={"systemPrompt": "hi"},
                         config=config)
    assert err.value.code == "ultravox-not-configured"
    assert err.value.details == {"setting": "ULTRAVOX_API_KEY"}


def test_redis_down_leaves_no_row(tenant, did, config):
    import redis as redis_lib

    dead = redis_lib.Redis(port=1, socket_connect_timeout=0.2)
    with pytest.raises(redis_lib.ConnectionError):
        voice_service.place_call(store_on(dead), tenant.id, FROM, TO, config=config)
    assert Call.select().count() == 0


def test_the_sweep_marks_a_delivered_call_done_without_queueing_it_again(tenant, did, redis,
                                                                         config):
    # the API leaves an originate entry's done mark to the sweep (no second write per call);
    # the sweep finds the entry's Redis mark and marks it done in bulk, applying nothing
    from trunx import outbox
    from trunx.models import OutboxEntry

    store = store_on(redis)
    calls = [voice_service.place_call(store, tenant.id, FROM, TO, config=config)
             for _ in range(3)]
    entries = list(OutboxEntry.select().where(OutboxEntry.kind == outbox.ORIGINATE))
    assert len(entries) == 3 and all(e.done_at is None for e in entries)
    assert outbox.sweep(store, 0, republish=None) == 0
    assert OutboxEntry.select().where(OutboxEntry.done_at.is_null()).count() == 0
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 3
    assert [voice_service.queue_position(redis, c.id) for c in calls] == [1, 2, 3]


def test_a_call_still_queued_is_not_queued_again_when_redis_lost_its_mark(tenant, did, redis,
                                                                          config):
    # a Redis that restarted and was rebuilt has the call queued but not the entry's mark
    from trunx import outbox
    from trunx.models import OutboxEntry

    store = store_on(redis)
    voice_service.place_call(store, tenant.id, FROM, TO, config=config)
    entry = OutboxEntry.get(OutboxEntry.kind == outbox.ORIGINATE)
    redis.delete(outbox.mark_key(entry.id))
    assert outbox.sweep(store, 0, republish=None) == 0
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1
    assert OutboxEntry.get_by_id(entry.id).done_at is not None


def test_calls_placed_at_once_share_a_turn_and_each_is_queued_once(tenant, did, redis,
                                                                   config):
    """The calls a worker places at once (a campaign's burst) are stored in one transaction
    and queued in one round trip (trunx/group_commit.py); each is queued once. SQLite: the
    writer lock, held here as another worker would hold it, lines them up."""
    import threading

    import peewee

    from devtools.stack import wait_until
    from trunx import models
    from trunx.store import WriterLock

    if not isinstance(models.proxy.obj, peewee.SqliteDatabase):
        pytest.skip("PostgreSQL takes call inserts without the writer lock")
    store = store_on(redis)
    group = voice_service._placements(store)
    placed, failed = [], []

    def place():
        try:
            placed.append(voice_service.place_call(store, tenant.id, FROM, TO, config=config).id)
        except Exception as exc:
            failed.append(exc)

    threads = [threading.Thread(target=place) for _ in range(10)]
    with WriterLock(models.proxy.obj):
        threads[0].start()
        wait_until(lambda: group._leading and not group._queue, message="a turn led")
        for t in threads[1:]:
            t.start()
        wait_until(lambda: len(group._queue) == 9, message="nine calls queued behind it")
    for t in threads:
        t.join(10)
    assert not failed and len(set(placed)) == 10
    stream = [fields["call"] for _, fields in redis.xrange(redis_schema.ORIGINATE_STREAM)]
    assert sorted(stream) == sorted(placed)            # every call queued, none twice
    assert Call.select().count() == 10


def test_a_turn_whose_queueing_fails_leaves_no_call(tenant, did, config):
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from trunx.models import OutboxEntry

    # nothing listens on port 1; no retries (the test is about what is left, not waiting)
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                           retry=Retry(NoBackoff(), 0))
    errors_ = voice_service._queued(store_on(dead), [_stored_call(tenant), _stored_call(tenant)])
    assert [type(e) for e in errors_] == [redis_lib.ConnectionError] * 2
    assert Call.select().count() == 0 and OutboxEntry.select().count() == 0


def _stored_call(tenant):
    from trunx import outbox
    from trunx.models import new_uuid

    call = Call.create(id=new_uuid(), call_sid=voice_service.new_call_sid(), account=tenant.id,
                       direction="outbound", from_number=FROM, to_number=TO,
                       status="initiated")
    return call, outbox.write(outbox.ORIGINATE, call.id, call.id,
                              outbox.originate_payload(call.id, tenant.id))
