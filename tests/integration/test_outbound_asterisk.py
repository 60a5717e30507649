"""Outbound calls on the real two-Asterisk SIP path: the engine (in-process) originates over
AMI to our PBX, which dials the test carrier over SIP; status comes from AMI events and is
read back from SQLite. See devtools/stack/dialplan/carrier.conf for what each carrier number
does."""
from __future__ import annotations

import asyncio
import itertools

import pytest

from admin_api.voice import service as voice_service
from tests.engine_support import running_engine
from tests.integration.outbound_support import (
    ANSWERS,
    ANSWERS_2S,
    BUSY,
    FROM,
    NO_ANSWER,
    RINGS_THEN_ANSWERS,
    carrier_channels,
    carrier_hold_time,
    make_account,
    outbound_config,
    wait_status,
)
from tests.store_support import store_on
from trunx.models import CallEvent

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx, originate_timeout=3)


@pytest.fixture
def account(cfg, redis):
    return make_account(cfg)


def place(account, to, cfg, redis, **kwargs):
    return voice_service.place_call(store_on(redis), account.id, FROM, to, config=cfg, **kwargs)


def statuses(call_id) -> list[str]:
    return [e.status for e in CallEvent.select().where(CallEvent.call == call_id)
            .order_by(CallEvent.at, CallEvent.id)]


async def test_answered_call_runs_initiated_ringing_answered_completed(
        cfg, account, redis, carrier_ami):
    async with running_engine(cfg) as engine:
        call = place(account, RINGS_THEN_ANSWERS, cfg, redis)
        row = await wait_status(call.id)
        assert engine.server.stats["errors"] == 0
        assert engine.outbound.sessions == 1
    assert (row.status, row.end_reason, row.cause) == ("completed", "callee-hangup", 16)
    assert statuses(call.id) == ["initiated", "ringing", "answered", "completed"]
    # the carrier answers, waits 2 s and hangs up; its Answer() also waits up to 0.5 s for
    # media, so it holds the call 2.5 s by its own clock. Ours agrees to a few ms.
    (received,) = carrier_channels(carrier_ami, RINGS_THEN_ANSWERS)
    await carrier_ami.wait_event(lambda e: e.get("Event") == "Hangup"
                                 and e.get("Uniqueid") == received["Uniqueid"], timeout=5)
    held = carrier_hold_time(carrier_ami, received)
    assert held == pytest.approx(2.5, abs=0.3)
    assert row.duration == pytest.approx(held, abs=0.1)
    assert (row.answered_at - row.ringing_at).total_seconds() == pytest.approx(1.0, abs=0.5)
    assert received["CallerIDNum"] == FROM          # our DID is the caller id the carrier sees


async def test_busy_fails_with_busy(cfg, account, redis):
    async with running_engine(cfg):
        call = place(account, BUSY, cfg, redis)
        row = await wait_status(call.id)
    assert (row.status, row.end_reason, row.cause) == ("failed", "busy", 17)
    assert statuses(call.id) == ["initiated", "failed"]
    assert row.duration == 0 and row.answered_at is None


async def test_no_answer_fails_after_the_ring_timeout(cfg, account, redis):
    async with running_engine(cfg):
        call = place(account, NO_ANSWER, cfg, redis)
        row = await wait_status(call.id)
    assert (row.status, row.end_reason) == ("failed", "no-answer")
    assert statuses(call.id) == ["initiated", "ringing", "failed"]
    # rang for originate_timeout (3 s)
    assert (row.ended_at - row.ringing_at).total_seconds() == pytest.approx(3.0, abs=1.0)


async def test_delete_hangs_up_a_live_call(cfg, account, redis, carrier_ami):
    async with running_engine(cfg):
        call = place(account, ANSWERS, cfg, redis)
        await wait_status(call.id, {"answered"})
        await asyncio.sleep(1.0)
        voice_service.request_hangup(redis, call.id)
        row = await wait_status(call.id, timeout=10)
    assert (row.status, row.end_reason) == ("completed", "api")
    assert row.duration == pytest.approx(1.0, abs=1.0)
    (received,) = carrier_channels(carrier_ami, ANSWERS)
    await carrier_ami.wait_event(lambda e: e.get("Event") == "Hangup"
                                 and e.get("Uniqueid") == received["Uniqueid"], timeout=5)


async def test_delete_cancels_a_ringing_call(cfg, account, redis, carrier_ami):
    async with running_engine(cfg):
        call = place(account, NO_ANSWER, cfg, redis)
        await wait_status(call.id, {"ringing"})
        voice_service.request_hangup(redis, call.id)
        row = await wait_status(call.id, timeout=10)
    assert (row.status, row.end_reason) == ("failed", "api")
    assert (row.ended_at - row.ringing_at).total_seconds() < 2.0   # before the 3 s timeout


async def test_max_duration_hangs_up_at_the_limit(cfg, account, redis):
    async with running_engine(cfg):
        call = place(account, ANSWERS, cfg, redis, max_duration="2s")
        row = await wait_status(call.id, timeout=15)
    assert (row.status, row.end_reason) == ("completed", "max-duration")
    assert row.duration == pytest.approx(2.0, abs=0.5)


async def test_a_number_suppressed_while_queued_is_never_dialled(cfg, account, redis,
                                                                  carrier_ami):
    from trunx import dnc

    call = place(account, ANSWERS_2S, cfg, redis)      # queued; the engine is not running
    dnc.suppress(account.id, ANSWERS_2S, source="api", redis=redis)
    async with running_engine(cfg):
        row = await wait_status(call.id)
    assert (row.status, row.end_reason) == ("failed", "number-suppressed")
    assert carrier_channels(carrier_ami, ANSWERS_2S) == []


async def test_calls_are_placed_in_order_at_the_paced_rate(cfg, account, redis, carrier_ami):
    cfg = cfg.replace(originate_cps=2.0)
    placed = [place(account, BUSY, cfg, redis) for _ in range(4)]
    assert [voice_service.queue_position(redis, c.id) for c in placed] == [1, 2, 3, 4]
    async with running_engine(cfg):
        rows = [await wait_status(c.id, timeout=20) for c in placed]
    # every call, with what it got, so an intermittent miss says which one and why
    assert [(r.status, r.end_reason, r.cause) for r in rows] == [("failed", "busy", 17)] * 4
    assert all(voice_service.queue_position(redis, c.id) is None for c in placed)
    arrived = [float(e["Timestamp"]) for e in carrier_channels(carrier_ami, BUSY)]
    assert len(arrived) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrived)]
    assert all(gap == pytest.approx(0.5, abs=0.1) for gap in gaps), gaps
