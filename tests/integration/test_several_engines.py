"""Several Asterisk servers and engines (docs/operators.md), on real parts: two PBX
Asterisks, each with its engine ("east" in this process on the session's pbx; "west" a
`python -m agi_server` process on a second PBX), and the carrier Asterisk.

The second PBX's first FastAGI address (TRUNX_AGI) is a port nobody listens on, and its
TRUNX_AGI_2 is west: every call it has reaches west through the dialplan's failover.
Outbound calls are spread over both PBXs; then west is killed with SIGKILL: east takes
over its queued calls and places them, the carrier sees no number dialled twice, an action
on one of east's calls still works, and west's calls end `lost`."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter

import pytest

from admin_api.call_actions import service as actions
from admin_api.voice import service as voice_service
from devtools.stack import free_port
from devtools.stack.ami import originate_local
from devtools.stack.procs import wait_until_async
from tests.engine_support import make_config, running_engine, seed_account
from tests.integration.conftest import _ami, _booted, _instance
from tests.integration.outbound_support import carrier_channels
from tests.store_support import store_on
from trunx import redis_schema
from trunx.models import Account, Call

pytestmark = [pytest.mark.asterisk]

DID = "+14155550142"
TREE = {"nodes": {   # holds an inbound caller: a short prompt and a gather, ten times
    "welcome": {"audio": "beep", "gather": {"1": "bye"}, "timeout": 3, "max_tries": 10,
                "timeout_node": "welcome"},
    "bye": {"action": "hangup"}}}
ACCOUNT_CPS = 4       # the account's own callsPerSecond: the queue drains while we watch
DEAD_AFTER = 1.5


def answering(i: int) -> str:
    """+1NXX555010X: the carrier answers and stays until we hang up; one area code each, so
    the carrier's view tells every call apart."""
    return f"+1{201 + i}5550100"


@pytest.fixture(scope="module")
def carrier2_sip_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def pbx2(asterisk_root, carrier2_sip_port):
    down = free_port()       # TRUNX_AGI: the first engine, down
    yield from _booted(_instance(asterisk_root, "pbx2", agi_port=down,
                                 carrier_sip_port=carrier2_sip_port))


@pytest.fixture(scope="module")
def carrier2(asterisk_root, pbx2, carrier2_sip_port):
    """The second PBX's trunk: the test carrier knows one peer, so a second one plays the
    same PSTN for it (the carriers' views together are the PSTN's)."""
    yield from _booted(_instance(asterisk_root, "carrier2", role="carrier",
                                 sip_port=carrier2_sip_port, pbx_sip_port=pbx2.sip_port))


@pytest.fixture
async def pbx2_ami(pbx2):
    async for client in _ami(pbx2):
        yield client


@pytest.fixture
async def carrier2_ami(carrier2):
    async for client in _ami(carrier2):
        yield client


def start_west(cfg, pbx2, agi_port: int) -> subprocess.Popen:
    env = {**os.environ, "TRUNX_DATA_DIR": cfg.data_dir, "TRUNX_REDIS_URL": cfg.redis_url,
           "TRUNX_DATABASE_URL": cfg.database_url, "TRUNX_AGI_PORT": str(agi_port),
           "TRUNX_AMI_PORT": str(pbx2.ami_port),
           "TRUNX_AMI_USER": pbx2.ami_user, "TRUNX_AMI_SECRET": pbx2.ami_secret,
           "TRUNX_ENGINE_ID": "west", "TRUNX_ENGINE_HTTP_PORT": str(free_port()),
           "TRUNX_AUDIOSOCKET_PORT": str(free_port()), "TRUNX_AGI_EVENT_LOOP": "asyncio",
           "TRUNX_ENGINE_HEARTBEAT": "0.3", "TRUNX_ENGINE_DEAD_AFTER": str(DEAD_AFTER),
           "TRUNX_ORIGINATE_CPS": str(cfg.originate_cps),
           "TRUNX_ORIGINATE_TIMEOUT": str(cfg.originate_timeout)}
    return subprocess.Popen([sys.executable, "-m", "agi_server", "--log-level", "WARNING"],
                            env=env)


async def test_two_engines_spread_calls_and_the_survivor_takes_over(
        tmp_path, redis_server, redis, pbx, carrier, pbx2, pbx2_ami, carrier_ami,
        carrier2_ami):
    cfg = make_config(tmp_path, redis_server.url, agi_port=pbx.agi_port,
                      ami_port=pbx.ami_port, ami_user=pbx.ami_user, ami_secret=pbx.ami_secret,
                      engine_id="east", engine_heartbeat=0.3, engine_dead_after=DEAD_AFTER,
                      originate_cps=20, originate_timeout=20)
    account, _ = seed_account(cfg, redis, tree=TREE, did=DID, ivr_id="hold")
    Account.update(calls_per_second=ACCOUNT_CPS).where(Account.id == account.id).execute()
    west_port = free_port()
    await pbx2_ami.action("Setvar", {"Variable": "TRUNX_AGI_2",
                                     "Value": f"agi://127.0.0.1:{west_port}/ivr"})
    west = start_west(cfg, pbx2, west_port)
    try:
        async with running_engine(cfg) as east:
            await wait_until_async(lambda: redis.exists(redis_schema.engine_key("west")),
                                   timeout=30, message="west's heartbeat")
            await wait_until_async(lambda: "west" in east.membership.peers, timeout=5,
                                   message="east sees west")
            # an inbound call on the second PBX: its first engine is down, west answers
            await originate_local(pbx2_ami, DID, "w40")
            inbound = await wait_until_async(
                lambda: [c for c in redis.smembers(redis_schema.engine_calls_key("west"))
                         if redis.hget(redis_schema.live_call_key(c), "direction")
                         == "inbound"], timeout=15, message="west holds the inbound call")

            # 6 calls spread over both PBXs
            first = [voice_service.place_call(store_on(redis), account.id, DID, answering(i),
                                              config=cfg) for i in range(6)]
            await wait_until_async(lambda: all(
                Call.get_by_id(c.id).status == "answered" for c in first), timeout=30,
                message="the first calls answered")
            holder = {c.id: redis.get(redis_schema.call_engine_key(c.id)) for c in first}
            assert set(holder.values()) == {"east", "west"}, holder

            # 8 more queued, drained at the account's pace; west dies after the first goes
            more = [voice_service.place_call(store_on(redis), account.id, DID,
                                             answering(6 + i), config=cfg) for i in range(8)]
            await wait_until_async(lambda: any(
                Call.get_by_id(c.id).status != "initiated" for c in more), timeout=15,
                message="the second batch started")
            west.send_signal(signal.SIGKILL)
            west.wait(timeout=10)

            # east takes over: every queued call placed, west's calls closed as lost
            await wait_until_async(lambda: "west" in east.reclaimer.reclaimed, timeout=15,
                                   message="east reclaimed west's work")
            await wait_until_async(lambda: all(
                Call.get_by_id(c.id).status in ("answered", "completed", "failed")
                for c in first + more), timeout=30, message="every call placed or closed")
            rows = {c.id: Call.get_by_id(c.id) for c in first + more}
            holder = {c: redis.get(redis_schema.call_engine_key(c)) for c in rows}
            for call_id, row in rows.items():
                if holder[call_id] == "west":
                    assert (row.status, row.end_reason) in (
                        ("completed", "lost"), ("failed", "lost")), (call_id, row.status)
                else:
                    assert holder[call_id] == "east" and row.status == "answered", \
                        (call_id, holder[call_id], row.status, row.end_reason)
            taken = east.reclaimer.reclaimed["west"]
            print(f"\nwest held {list(holder.values()).count('west')} calls; east took "
                  f"over {taken}")
            assert taken["outbound_lost"] == list(holder.values()).count("west")
            assert taken["inbound_lost"] == 1
            # the carrier's view: every number dialled at most once, east's exactly once
            dialled = Counter(e.get("Exten") for e in carrier_ami.events + carrier2_ami.events
                              if e.get("Event") == "Newchannel")
            for call_id, row in rows.items():
                assert dialled[row.to_number] <= 1, row.to_number
                assert holder[call_id] != "east" or dialled[row.to_number] == 1
            assert any(holder[c.id] == "east" for c in more)   # reclaimed work was placed

            # an action on a survivor's call goes to east and is carried out
            survivor = next(c for c in rows if holder[c] == "east")
            live = actions.live_call(redis, account.id, account.id, survivor)
            assert live["engine"] == "east"
            sent = actions.dtmf(redis, cfg, account.id, survivor, {"digits": "1"})
            await wait_until_async(lambda: redis.hget(
                redis_schema.action_key(sent["dtmf_uuid"]), "status") == "completed",
                timeout=15, message="the dtmf action completed")
            assert len(carrier_channels(carrier_ami, rows[survivor].to_number)) == 1
            assert len(carrier_channels(carrier2_ami, rows[survivor].to_number)) == 0

            # west's inbound call: gone from the live index, its row says lost
            assert not redis.exists(redis_schema.live_call_key(inbound[0]))
            row = Call.get_by_id(inbound[0])
            assert (row.direction, row.outcome, row.end_reason, row.to_number,
                    row.ivr_id) == ("inbound", "lost", "lost", DID, "hold")
            # with the path it had: the welcome prompt, entered at least once
            assert [p["node"] for p in row.path if p["event"] == "enter"][:1] == ["welcome"]
            for call_id in rows:                           # hang the survivors up
                voice_service.request_hangup(redis, call_id)
            await wait_until_async(lambda: all(
                Call.get_by_id(c).status in ("completed", "failed") for c in rows),
                timeout=20, message="every call ended")
    finally:
        if west.poll() is None:
            west.kill()
            west.wait(timeout=10)
