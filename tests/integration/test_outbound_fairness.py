"""Fair between accounts: one account's backlog of queued calls does not hold back another
account's call (agi_server/ami/lanes.py), on the real two-Asterisk SIP path."""
from __future__ import annotations

import asyncio

import pytest

from admin_api.voice import service as voice_service
from tests.engine_support import running_engine
from tests.integration.outbound_support import BUSY, FROM, make_account, outbound_config
from tests.store_support import store_on
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
