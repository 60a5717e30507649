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
    queue_call,
    wait_status,
)
from tests.store_support import store_on
from trunx.calls import FINAL
from trunx.models import Call, new_uuid, utcnow

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

BACKLOG = 5000
CPS = 10
B_BUSY = "+12035550110"          # B's own busy line, so the carrier tells the calls apart
# B's call goes before more than N of A's calls were placed after it was queued. From the
# paces and the turns (agi_server/ami/lanes.py): when B's call is queued, one of A's calls
# may hold its reserved slot of the shared pace; B's lane then joins the rotation behind
# A's, which has one more turn first. So N = 1 + the other accounts waiting (1 here), and
# at CPS calls a second B's call goes within (N + 1) / CPS seconds of its pace, where A's
# backlog would take BACKLOG / CPS = 500 s.
N = 2


def queue_backlog(redis, account_id: str, to: str, count: int) -> None:
    """`count` calls as POST /api/voice stores them (rows `initiated`), queued by the API's
    own queueing function; the rows in one insert, so the test spends its time dialling."""
    now = utcnow()
    rows = [{"id": new_uuid(), "call_sid": voice_service.new_call_sid(), "account": account_id,
             "direction": "outbound", "from_number": FROM, "to_number": to,
             "status": "initiated", "provider": "asterisk", "created_at": now,
             "queued_at": now} for _ in range(count)]
    with Call._meta.database.atomic():
        for start in range(0, count, 500):
            Call.insert_many(rows[start:start + 500]).execute()
    with Call._meta.database.atomic():      # 5,000 outbox entries: one commit
        for row in rows:
            queue_call(redis, row["id"], account_id)


def dialled(events, number: str) -> list[int]:
    """Positions of the carrier's new channels for `number` (a call it received)."""
    return [i for i, e in enumerate(events)
            if e.get("Event") == "Newchannel" and e.get("Exten") == number]


async def test_one_accounts_backlog_does_not_delay_anothers_call(tmp_path, redis_server, redis,
                                                                 pbx, carrier, carrier_ami):
    cfg = outbound_config(tmp_path, redis_server.url, pbx, originate_cps=CPS,
                          max_queued_calls=BACKLOG + 10, api_rate_limit=100000)
    a = make_account(cfg)
    b = make_account(cfg, number="+14155559877")
    queue_backlog(redis, a.id, BUSY, BACKLOG)
    async with running_engine(cfg):
        async with asyncio.timeout(20):
            while len(dialled(carrier_ami.events, BUSY)) < 3:   # A's backlog is being dialled
                await asyncio.sleep(0.05)
        mark = len(carrier_ami.events)
        call = voice_service.place_call(store_on(redis), b.id, "+14155559877", B_BUSY,
                                        config=cfg)
        async with asyncio.timeout(10):
            while not dialled(carrier_ami.events[mark:], B_BUSY):
                await asyncio.sleep(0.02)
        row = await wait_status(call.id)
    since = carrier_ami.events[mark:]
    b_at = dialled(since, B_BUSY)[0]
    a_before_b = sum(1 for i in dialled(since, BUSY) if i < b_at)
    # the carrier's view: B's call arrived before more than N of A's (not after ~5,000)
    print(f"\nB's call reached the carrier after {a_before_b} more of A's {BACKLOG} "
          f"queued calls")
    assert a_before_b <= N
    assert len(dialled(since, B_BUSY)) == 1 and row.end_reason == "busy"


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
