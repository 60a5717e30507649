"""The one AMI connection under failure: a link cut right after an Originate reached
Asterisk (panoramisk would re-send it after reconnecting: a second call), and a link that
stays up but goes silent (panoramisk's ping never checks the reply). The carrier counts the
calls it receives."""
from __future__ import annotations

import asyncio

import pytest

from admin_api.voice import service as voice_service
from tests.integration.outbound_support import (
    ANSWERS_2S,
    BUSY,
    FROM,
    RINGS_LONG_THEN_ANSWERS,
    RINGS_THEN_ANSWERS,
    AmiProxy,
    carrier_channels,
    engine_running,
    make_account,
    outbound_config,
    wait_status,
)
from tests.store_support import store_on
from trunx import redis_schema
from trunx.models import CallEvent

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture
async def proxy(pbx):
    proxy = await AmiProxy(pbx.ami_port).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier, proxy):
    return outbound_config(tmp_path, redis_server.url, pbx, ami_port=proxy.port)


def fast_watchdog(engine):
    engine.ami.ping_interval, engine.ami.ping_timeout = 0.5, 0.5


async def test_link_cut_after_originate_places_one_call(cfg, redis, proxy, carrier_ami):
    account = make_account(cfg)
    async with engine_running(cfg) as engine:
        await asyncio.wait_for(engine.ami.connected.wait(), 10)
        proxy.cut_after(b"Action: Originate")
        call = voice_service.place_call(store_on(redis), account.id, FROM, RINGS_THEN_ANSWERS,
                                        config=cfg)
        row = await wait_status(call.id, timeout=30)
        await asyncio.sleep(2)          # a re-sent Originate would have reached the carrier
        assert proxy.cuts == 1 and proxy.connections >= 2
        assert engine.ami.stats["logins"] >= 2
        assert engine.dialer.originated == 0      # its reply never came back ...
    assert len(carrier_channels(carrier_ami, RINGS_THEN_ANSWERS)) == 1   # ... yet one call
    assert row.status == "completed" and row.duration == pytest.approx(2.0, abs=1.0)
    events = [e.status for e in CallEvent.select().where(CallEvent.call == call.id)
              .order_by(CallEvent.at, CallEvent.id)]
    assert events[0] == "initiated" and events[-2:] == ["answered", "completed"]


async def test_link_cut_after_originate_of_a_short_call_places_one_call(cfg, redis, proxy,
                                                                        carrier_ami):
    """A busy number ends within milliseconds, long before the reconnect: a re-sent
    Originate would find its ChannelId free again and place a second call."""
    account = make_account(cfg)
    async with engine_running(cfg) as engine:
        await asyncio.wait_for(engine.ami.connected.wait(), 10)
        proxy.cut_after(b"Action: Originate")
        call = voice_service.place_call(store_on(redis), account.id, FROM, BUSY, config=cfg)
        row = await wait_status(call.id, timeout=30)
        async with asyncio.timeout(10):
            while engine.ami.stats["logins"] < 2:
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)
    assert len(carrier_channels(carrier_ami, BUSY)) == 1
    # its end happened while nobody listened: known to have ended, not how
    assert (row.status, row.end_reason) == ("failed", "originate-lost")


async def test_silent_link_is_noticed_by_the_ping_and_replaced(cfg, redis, proxy, carrier_ami):
    account = make_account(cfg)
    async with engine_running(cfg, fast_watchdog) as engine:
        await asyncio.wait_for(engine.ami.connected.wait(), 10)
        proxy.blackhole()
        async with asyncio.timeout(10):
            while engine.ami.stats["logins"] < 2:
                await asyncio.sleep(0.1)
        assert engine.ami.stats["ping_failures"] >= 1
        call = voice_service.place_call(store_on(redis), account.id, FROM, ANSWERS_2S, config=cfg)
        row = await wait_status(call.id, timeout=30)
    assert row.status == "completed"
    assert len(carrier_channels(carrier_ami, ANSWERS_2S)) == 1


async def test_an_engine_restarted_while_a_call_rings_follows_it_without_redialling(
        tmp_path, redis_server, pbx, carrier, redis, carrier_ami):
    cfg = outbound_config(tmp_path, redis_server.url, pbx)      # straight to the PBX's AMI
    account = make_account(cfg)
    async with engine_running(cfg):
        call = voice_service.place_call(store_on(redis), account.id, FROM,
                                        RINGS_LONG_THEN_ANSWERS, config=cfg)
        await wait_status(call.id, {"ringing"})
    # the first engine is gone; the carrier is still ringing (it answers after 6 s: an
    # engine that took longer than 1 s to start again found the call answered without it)
    async with engine_running(cfg) as engine:
        row = await wait_status(call.id, timeout=30)
        assert engine.outbound.sessions == 1        # the new engine held the answered call
        assert engine.dialer.originated == 0
    assert row.status == "completed" and row.duration == pytest.approx(2.5, abs=0.5)
    assert len(carrier_channels(carrier_ami, RINGS_LONG_THEN_ANSWERS)) == 1


async def test_a_take_cut_off_before_the_originate_is_placed_once_on_the_next(
        tmp_path, redis_server, pbx, carrier, redis, carrier_ami):
    """A Redis failover can lose the reply to the dialer's SET of the originated mark: the
    mark is on the new master, the dialer never got on to the `initiated` event or the
    Originate. Read again, the call is placed (once), not written off as originate-lost."""
    cfg = outbound_config(tmp_path, redis_server.url, pbx)
    account = make_account(cfg)
    call = voice_service.place_call(store_on(redis), account.id, FROM, ANSWERS_2S, config=cfg)
    redis.set(redis_schema.originated_key(call.id), "sent")     # the cut-off take's mark
    async with engine_running(cfg) as engine:
        row = await wait_status(call.id, timeout=30)
        assert engine.dialer.originated == 1
    assert (row.status, row.end_reason) == ("completed", "callee-hangup")
    assert len(carrier_channels(carrier_ami, ANSWERS_2S)) == 1
