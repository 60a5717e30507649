"""Redis killed (kill -9) for 10 s under a steady stream of SIP callers from outside: SIPp on
the carrier's identified address places calls on the trunk of the real PBX Asterisk, 5 a
second for 16 s, each staying on the line until the PBX hangs up. Every call to the known
DID walks its whole IVR path (the ones that start while Redis is away on the last-known
tree, marked `tree-stale`), none hears the fallback; a DID the engine never served hears
the fallback while Redis is away; calls that start once Redis is back run fresh trees."""
from __future__ import annotations

import asyncio
import csv
import datetime
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis as redis_lib

from devtools.demo import publish_demo
from devtools.stack import Asterisk, RedisServer, free_port
from tests.engine_support import SEED_DID, make_config, running_engine
from tests.store_support import store_on
from trunx import db
from trunx.models import Account, Call, Did, utcnow

pytestmark = [pytest.mark.asterisk, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("sipp") is None,
                                 reason="sipp missing: `make deps` installs sip-tester")]

SCENARIO = Path(__file__).parent.parent / "fixtures" / "sipp" / "uac_until_bye.xml"
UNSEEN_DID = "+19495550002"    # has an IVR, but is first called while Redis is away
# three nodes, no keys pressed: each prompt times out into the next (about 3 s a call)
TREE = {"nodes": {
    "greet": {"audio": "beep", "gather": {"1": "bye"}, "timeout": 0.5, "max_tries": 1,
              "timeout_node": "menu"},
    "menu": {"audio": "beep", "gather": {"1": "bye"}, "timeout": 0.5, "max_tries": 1,
             "timeout_node": "bye"},
    "bye": {"action": "hangup", "audio": "beep"}}}
RATE, SECONDS, OUTAGE = 5, 16, 10.0
CALLS = RATE * SECONDS
UNSEEN_AT = (35, 40, 45)   # 7-9 s in: Redis goes away ~2 s in, comes back ~12 s in


def nodes(row) -> list[str]:
    return [p["node"] for p in row.path if p["event"] == "enter"]


def stale(row) -> bool:
    return any(p["event"] == "tree-stale" for p in row.path)


@pytest.mark.timeout(120)
async def test_redis_killed_for_10s_under_sip_callers(asterisk_root, tmp_path):
    sipp_port = free_port(socket.SOCK_DGRAM)
    dids = tmp_path / "dids.csv"
    dids.write_text("SEQUENTIAL\n" + "".join(
        f"{UNSEEN_DID if n in UNSEEN_AT else SEED_DID};\n" for n in range(CALLS)))
    with RedisServer(tmp_path / "redis") as own, \
            Asterisk(asterisk_root, "away", agi_port=free_port(),
                     carrier_sip_port=sipp_port) as pbx:
        cfg = make_config(tmp_path, own.url, agi_port=pbx.agi_port, ami_port=pbx.ami_port)
        db.connect(cfg)
        client = redis_lib.Redis.from_url(own.url, decode_responses=True)
        account = Account.create(name="away")
        publish_demo(store_on(client), account, cfg, tree=TREE)
        publish_demo(store_on(client), account, cfg, tree=TREE, did=UNSEEN_DID,
                     ivr_id="unseen")
        client.close()
        assert Did.select().count() == 2
        argv = ["sipp", f"127.0.0.1:{pbx.sip_port}", "-sf", str(SCENARIO), "-inf", str(dids),
                "-i", "127.0.0.1", "-p", str(sipp_port), "-mi", "127.0.0.1",
                "-mp", str(free_port(socket.SOCK_DGRAM)), "-rtp_echo",
                "-m", str(CALLS), "-l", str(CALLS), "-r", str(RATE),
                "-nostdin", "-timeout", "60s", "-timeout_error",
                "-trace_stat", "-stf", str(tmp_path / "sipp.csv"), "-fd", "1"]
        async with running_engine(cfg) as engine:
            sipp = asyncio.create_task(asyncio.to_thread(
                subprocess.run, argv, capture_output=True, text=True, timeout=90,
                cwd=tmp_path))
            async with asyncio.timeout(20):    # a few calls served while Redis is up
                while engine.server.stats["calls"] < 5:
                    await asyncio.sleep(0.05)
            killed = utcnow()
            own.kill()
            await asyncio.sleep(OUTAGE)     # the outage itself: its length is the test
            own.start()                     # empty (no persistence): resynced from SQLite
            back = utcnow()
            done = await sipp
            async with asyncio.timeout(10):
                while Call.select().count() < CALLS:
                    await asyncio.sleep(0.05)
            assert engine.server.stats["errors"] == 0
            assert engine.resyncs == 1

    with (tmp_path / "sipp.csv").open() as f:
        last = list(csv.DictReader(f, delimiter=";"))[-1]
    assert done.returncode == 0, (last.get("FailedCall(C)"), done.stdout[-3000:])
    assert (int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])) == (CALLS, 0)

    known = list(Call.select().where(Call.to_number == SEED_DID).order_by(Call.created_at))
    unseen = list(Call.select().where(Call.to_number == UNSEEN_DID))
    assert len(known) == CALLS - len(UNSEEN_AT) and len(unseen) == len(UNSEEN_AT)
    # every caller to the known DID walked the whole path; nobody heard the fallback
    walked = {(tuple(nodes(r)), r.outcome) for r in known}
    assert walked == {(("greet", "menu", "bye"), "hangup")}, walked
    during = [r for r in known if killed + _S(0.5) < r.created_at < back]
    after = [r for r in known if r.created_at > back + _S(2.0)]
    assert len(during) >= 8 * RATE and all(stale(r) for r in during)
    assert after and not any(stale(r) for r in after)
    # the DID it never served: the fallback, and only while Redis was away
    assert all(killed < r.created_at < back for r in unseen), "timing: see UNSEEN_AT"
    assert {(r.outcome, r.end_reason) for r in unseen} == {("fallback", "redis-unavailable")}
    print(f"{CALLS} calls at {RATE}/s, Redis away {OUTAGE:.0f} s: {len(during)} ran stale, "
          f"0 fallbacks on the known DID")


def _S(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)
