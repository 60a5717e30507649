"""Fair between accounts: one account's backlog of queued calls does not hold back another
account's call (agi_server/ami/lanes.py), on the real two-Asterisk SIP path."""
from __future__ import annotations

import asyncio

import pytest

from admin_api.voice import service as voice_service
from tests.engine_support import running_engine
from tests.integration.outbound_support import (
    BUSY,
    FROM,
    NO_ANSWER,
    make_account,
    outbound_config,
)
from tests.store_support import store_on
from trunx.calls import FINAL
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

BACKLOG = 3000
CPS = 10


def left_queue(account_id: str) -> int:
    return Call.select().where(Call.account == account_id, Call.status != "initiated").count()


async def test_one_accounts_backlog_does_not_delay_anothers_call(tmp_path, redis_server, redis,
                                                                 pbx, carrier):
    cfg = outbound_config(tmp_path, redis_server.url, pbx, originate_cps=CPS,
                          max_queued_calls=BACKLOG + 10, api_rate_limit=100000)
    a = make_account(cfg)
    b = make_account(cfg, number="+14155559877")
    for _ in range(BACKLOG):                 # to the carrier's busy line: each ends at once
        voice_service.place_call(store_on(redis), a.id, FROM, BUSY, config=cfg)
    async with running_engine(cfg):
        async with asyncio.timeout(20):
            while left_queue(a.id) < 3:       # A's backlog is being dialled
                await asyncio.sleep(0.05)
        before = left_queue(a.id)
        call = voice_service.place_call(store_on(redis), b.id, "+14155559877", BUSY,
                                        config=cfg)
        async with asyncio.timeout(10):
            while Call.get_by_id(call.id).status == "initiated":
                await asyncio.sleep(0.02)
        a_meanwhile = left_queue(a.id) - before
    # B's call went at most two of A's calls later (its turn in the rotation, at CPS
    # calls a second), not after A's remaining ~3,000
    print(f"\nB's call placed after {a_meanwhile} more of A's {BACKLOG} queued calls")
    assert a_meanwhile <= 2
    assert left_queue(a.id) < BACKLOG / 2


async def test_an_account_at_its_concurrent_cap_waits_and_others_go(tmp_path, redis_server,
                                                                   redis, pbx, carrier):
    """max_concurrent_calls holds when calls are dialled, not only when they are queued: A's
    five calls to a line that never answers go two at a time; B's call does not wait."""
    cfg = outbound_config(tmp_path, redis_server.url, pbx, originate_cps=0,
                          originate_timeout=2, max_concurrent_calls=2)
    a = make_account(cfg)
    b = make_account(cfg, number="+14155559877")
    calls = [voice_service.place_call(store_on(redis), a.id, FROM, NO_ANSWER, config=cfg)
             for _ in range(5)]
    most, b_went = 0, False
    async with running_engine(cfg):
        theirs = voice_service.place_call(store_on(redis), b.id, "+14155559877", NO_ANSWER,
                                          config=cfg)
        async with asyncio.timeout(30):
            while True:
                rows = [Call.get_by_id(c.id) for c in calls]
                most = max(most, sum(r.status in ("ringing", "answered") for r in rows))
                if Call.get_by_id(theirs.id).status != "initiated" and most:
                    b_went = True
                if all(r.status in FINAL for r in rows):
                    break
                await asyncio.sleep(0.05)
    assert b_went
    assert most == 2                          # two at a time, never more
    assert [r.end_reason for r in rows] == ["no-answer"] * 5
