"""The Voice API end to end on the real two-Asterisk path: POST /api/voice, GET while the
call moves, DELETE hanging up the live call (the engine confirms within the API's wait),
and the do-not-call list refusing both an API call and an IVR transfer."""
from __future__ import annotations

import asyncio

import pytest

from admin_api import create_app
from devtools.stack.ami import originate_local
from tests.engine_support import running_engine, seed_account
from tests.integration.outbound_support import (
    ANSWERS,
    ANSWERS_2S,
    FROM,
    carrier_channels,
    make_account,
    outbound_config,
    wait_status,
)
from trunx import accounts
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx)


@pytest.fixture
def api(cfg, redis):
    account = make_account(cfg)
    client = create_app(cfg, redis=redis).test_client()
    headers = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    return client, headers, account


async def test_post_get_delete_on_a_live_call(cfg, api, carrier_ami):
    client, h, _ = api
    async with running_engine(cfg):
        r = client.post("/api/voice", json={"from": FROM, "to": ANSWERS}, headers=h)
        assert r.status_code == 201
        call_id = r.get_json()["id"]
        await wait_status(call_id, {"answered"})
        got = client.get(f"/api/voice/{call_id}", headers=h).get_json()
        assert (got["status"], got["duration"]) == ("answered", None)
        # DELETE blocks (up to 5 s) until the engine confirms: run it off the event loop
        r = await asyncio.to_thread(client.delete, f"/api/voice/{call_id}", headers=h)
        assert (r.status_code, r.get_json()) == (200, {"ended": True})
    got = client.get(f"/api/voice/{call_id}", headers=h).get_json()
    assert (got["status"], got["endReason"]) == ("completed", "api")
    assert len(carrier_channels(carrier_ami, ANSWERS)) == 1


async def test_suppressed_number_is_refused_by_the_api_and_never_dialled(cfg, api,
                                                                         carrier_ami):
    client, h, _ = api
    assert client.post("/api/suppressions", json={"number": ANSWERS_2S},
                       headers=h).status_code == 201
    async with running_engine(cfg):
        r = client.post("/api/voice", json={"from": FROM, "to": ANSWERS_2S}, headers=h)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "number-suppressed"
        await asyncio.sleep(1)
    assert carrier_channels(carrier_ami, ANSWERS_2S) == []
    assert Call.select().count() == 0


async def test_ivr_transfer_to_a_suppressed_number_is_refused(cfg, redis, pbx_ami,
                                                              carrier_ami):
    did = "+19495551234"
    tree = {"nodes": {"out": {"action": "transfer", "to": ANSWERS_2S}}}
    account, _ = seed_account(cfg, redis, tree=tree, did=did, ivr_id="straight-out")
    client = create_app(cfg, redis=redis).test_client()
    h = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    assert client.post("/api/suppressions", json={"number": ANSWERS_2S},
                       headers=h).status_code == 201
    async with running_engine(cfg):
        call = await originate_local(pbx_ami, did, "w10", caller_id="Test <+12025550199>")
        async with asyncio.timeout(30):
            while (row := Call.get_or_none(Call.uniqueid == call.callee_id,
                                           Call.ended_at.is_null(False))) is None:
                await asyncio.sleep(0.1)        # its final row (a row exists from the start)
    (refused,) = [p for p in row.path if p["event"] == "transfer-refused"]
    assert (refused["to"], refused["reason"]) == (ANSWERS_2S, "number-suppressed")
    assert (row.outcome, row.end_reason) == ("transfer-failed", "number-suppressed")
    assert carrier_channels(carrier_ami, ANSWERS_2S) == []
