"""The record writer (agi_server/calls/record_sink.py, record_writer.py): the engine's call
rows written by a child process it owns, with the guarantees the database thread gave. A
real engine over a real socket with a scripted FastAGI peer, the real child process, real
Redis and the tests' database (SQLite, or PostgreSQL with TRUNX_TEST_DB=postgresql)."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from agi_server.calls.record import CallRecord
from bench.agi_emulator import Scenario, run_session
from devtools.stack.procs import wait_until_async
from tests.engine_support import SEED_DID, make_config, running_engine, seed_account
from trunx.ivr import visits
from trunx.models import Call, CallNodeVisit

ENV = {"agi_network": "yes", "agi_network_script": "ivr", "agi_channel": "PJSIP/carrier-1",
       "agi_uniqueid": "1700000000.1", "agi_callerid": "+12025550161",
       "agi_extension": SEED_DID, "agi_dnid": SEED_DID}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reaped(pid: int) -> bool:
    """Exited and waited for by the engine (a zombie still has its /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("writer", ["process", "thread"])
async def test_the_start_row_is_committed_before_answer_and_the_final_row_after(
        tmp_path, redis_server, redis, writer):
    cfg = make_config(tmp_path, redis_server.url, record_writer=writer)
    account, _ = seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        if writer == "process":
            assert engine.sink.pid not in (None, os.getpid()) and _alive(engine.sink.pid)
        else:
            assert engine.sink is None
        reader, writer_ = await asyncio.open_connection("127.0.0.1", engine.server.port)
        writer_.write("".join(f"{k}: {v}\n" for k, v in ENV.items()).encode() + b"\n")
        assert (await reader.readline()).startswith(b"ANSWER")
        # Asterisk has not answered yet: the call's row is there already
        row = Call.get(Call.from_number == "+12025550161")
        assert (row.status, row.ended_at, row.account_id) == ("answered", None, account.id)
        writer_.write(b"200 result=-1\nHANGUP\n")      # the caller hangs up
        await reader.read()
        writer_.close()
        row = await wait_until_async(
            lambda: (r := Call.get_by_id(row.id)).ended_at is not None and r)
        assert (row.status, row.outcome) == ("completed", "caller-hangup")
        if writer == "process":
            assert engine.sink.batches >= 2       # the start row's batch, the final row's
    assert Call.select().count() == 1 and engine.records_saved == 1


async def test_kill_9_of_the_writer_under_load_loses_no_row_and_writes_none_twice(
        tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url, record_checkpoint_interval=0.1)
    seed_account(cfg, redis)
    calls = 40
    # (bounded: an engine that lost a batch would wait for it at its stop for ever)
    async with asyncio.timeout(60), running_engine(cfg) as engine:
        first = engine.sink.pid
        sessions = [asyncio.create_task(run_session(
            "127.0.0.1", engine.server.port,
            Scenario(keys=["1", "2"], reply_delay=0.05, caller=f"+1202555{i:04d}"), i))
            for i in range(calls)]
        await wait_until_async(lambda: Call.select().count() >= calls // 4)
        # stopped first, so batches are surely in its hands (sent, not answered) when
        # it dies: the engine must send them again to the next child
        os.kill(first, signal.SIGSTOP)
        await wait_until_async(lambda: engine.sink.unanswered > 0)
        os.kill(first, signal.SIGKILL)
        results = await asyncio.gather(*sessions)
        assert [r.error for r in results] == [None] * calls
        await wait_until_async(lambda: engine.records_saved == calls, timeout=20)
        assert engine.sink.restarts >= 1 and engine.sink.pid != first
        assert engine.metrics.registry.get_sample_value(
            "trunx_record_writer_restarts_total") == engine.sink.restarts
        assert _reaped(first)
    rows = list(Call.select())
    assert len(rows) == calls and all(r.status == "completed" and r.ended_at for r in rows)
    for r in rows:       # the visit rows of each call: those of its path, once
        expected = visits.visit_rows(visits.reduce_path(r.path, r.outcome))
        stored = (CallNodeVisit.select().where(CallNodeVisit.call == r.id)
                  .order_by(CallNodeVisit.seq))
        assert [v.node for v in stored] == [e[0] for e in expected]
    assert engine.records_saved == calls


async def test_stop_returns_once_every_row_is_committed(tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url)
    seed_account(cfg, redis)
    async with asyncio.timeout(60), running_engine(cfg) as engine:
        pid = engine.sink.pid
        sessions = [asyncio.create_task(run_session(
            "127.0.0.1", engine.server.port,
            Scenario(keys=["1", "2"], reply_delay=0.1, caller=f"+1202555{i:04d}"), i))
            for i in range(5)]
        await wait_until_async(lambda: Call.select().count() == 5)     # all answered
        os.kill(pid, signal.SIGSTOP)      # their final rows wait in the writer's hands
        await asyncio.gather(*sessions)
        await wait_until_async(lambda: engine.sink.unanswered > 0)
        asyncio.get_running_loop().call_later(1.5, os.kill, pid, signal.SIGCONT)
    # (the engine stopped as the block ended, the writer held for part of it)
    assert Call.select().where(Call.ended_at.is_null(False)).count() == 5
    assert engine.records_saved == 5 and _reaped(pid)


async def test_a_bad_row_does_not_cost_the_others_theirs(tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url)
    account, _ = seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        good = [CallRecord(did=SEED_DID, caller=f"+1202555000{i}", uniqueid=str(i),
                           channel="PJSIP/x", account=account.id) for i in range(2)]
        # an account that does not exist: its row breaks a foreign key, and fails alone
        bad = CallRecord(did=SEED_DID, caller="+12025550009", uniqueid="9",
                         channel="PJSIP/x", account="no-such-account")
        for record in (good[0], bad, good[1]):
            record.finish("completed")
            engine._save(record)       # ended together: one batch
        await wait_until_async(lambda: engine.records_saved == 2)
        assert engine.sink.batches >= 2       # the batch failed; rows went one by one
    assert {c.id for c in Call.select()} == {r.id for r in good}
    assert engine.metrics.registry.get_sample_value(
        "trunx_database_errors_total", {"where": "call-record"}) == 1
