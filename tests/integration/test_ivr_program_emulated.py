"""The IVR program end to end over a real socket, Redis and SQLite, with the scripted
FastAGI peer (bench.agi_emulator) standing in for Asterisk: a prompt Asterisk does not
have, and the seed's bare transfer node with the account's default target. The same
behaviours run on the real Asterisk in test_ivr_asterisk.py and
test_ivr_agent_transfer.py."""
from __future__ import annotations

from tests.engine_support import make_config, running_engine, seed_account
from tests.integration.test_engine_emulated import call
from trunx import dnc
from trunx.ivr import transfer_target
from trunx.models import Account


def events(row) -> list[tuple[str, str]]:
    return [(p["node"], p["event"]) for p in row.path]


async def test_a_missing_gather_prompt_is_skipped_and_its_keys_still_work(tmp_path,
                                                                            redis_server,
                                                                            redis):
    cfg = make_config(tmp_path, redis_server.url)
    seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["9"], missing=("welcome",))
        assert engine.services.stats["prompt_missing"] == 1
        assert engine.server.stats["errors"] == 0
    # GET OPTION said -1; the channel answered CHANNEL STATUS, so it was the file
    assert res.commands[1:4] == ['GET OPTION "welcome" "0123456789*#" 5000', "CHANNEL STATUS",
                                 "WAIT FOR DIGIT 5000"]
    assert events(row)[:3] == [("welcome", "enter"), ("welcome", "prompt-missing"),
                               ("welcome", "digits")]
    assert row.path[1]["file"] == "welcome"
    assert (row.outcome, row.end_reason) == ("suppressed", None)


async def test_a_missing_goodbye_still_hangs_up_politely(tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url)
    seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "2"], missing=("not_qualified",))
    assert ("unqualified", "prompt-missing") in events(row)
    assert row.outcome == "hangup" and res.commands[-1] == "HANGUP"


async def test_a_hangup_mid_prompt_is_still_a_hangup_without_a_probe(tmp_path, redis_server,
                                                                     redis):
    cfg = make_config(tmp_path, redis_server.url)
    seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1"], hangup_after=2)
        assert engine.services.stats["prompt_missing"] == 0
    assert "CHANNEL STATUS" not in res.commands     # Asterisk had said HANGUP already
    assert row.outcome == "caller-hangup"


async def test_the_bare_transfer_dials_the_accounts_default_number(tmp_path, redis_server,
                                                                   redis):
    cfg = make_config(tmp_path, redis_server.url, transfer_dial="Local/agent@test-agent")
    account, _ = seed_account(cfg, redis)
    Account.update(default_transfer="+14155550123").where(Account.id == account.id).execute()
    transfer_target.publish(redis, account.id, "+14155550123")
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "1"])
    assert 'EXEC Dial "PJSIP/+14155550123@carrier,30"' in res.commands
    (step,) = [p for p in row.path if p["event"] == "transfer"]
    assert (step["dial"], step["target"]) == ("PJSIP/+14155550123@carrier", "account-default")
    assert row.outcome == "transferred"


async def test_a_default_number_on_the_dnc_list_is_refused(tmp_path, redis_server, redis):
    cfg = make_config(tmp_path, redis_server.url)
    account, _ = seed_account(cfg, redis)
    Account.update(default_transfer="+14155550123").where(Account.id == account.id).execute()
    transfer_target.publish(redis, account.id, "+14155550123")
    dnc.suppress(account.id, "+14155550123", source="api")   # the database only
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "1"])
    assert not any(c.startswith("EXEC Dial") for c in res.commands)
    assert (row.outcome, row.end_reason) == ("transfer-failed", "number-suppressed")
    assert res.commands[-2:] == ['STREAM FILE "ss-noservice" ""', "HANGUP"]


async def test_no_default_and_no_transfer_dial_is_the_polite_fallback(tmp_path, redis_server,
                                                                      redis):
    cfg = make_config(tmp_path, redis_server.url)
    seed_account(cfg, redis)
    async with running_engine(cfg) as engine:
        res, row = await call(engine, keys=["1", "1"])
    assert (row.outcome, row.end_reason) == ("transfer-failed", "no-transfer-target")
    assert res.commands[-2:] == ['STREAM FILE "ss-noservice" ""', "HANGUP"]

