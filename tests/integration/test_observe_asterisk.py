"""Watching trunx run, on the real two-Asterisk path: the engine's /healthz, /readyz and
/metrics (agi_server/health.py, metrics.py) with the figures moving after real calls, JSON
log lines carrying the call's id, the call list showing an inbound call's IVR path, the
signed inbound webhooks (agi_server/calls/notify.py), and Idempotency-Key on a POST
/api/voice and a call action placing one call at the carrier and acting once."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import pytest
import requests

from admin_api import create_app
from devtools.demo import publish_demo, stage_prompts
from devtools.stack.ami import originate_local
from tests.engine_support import SEED_DID, running_engine
from tests.integration.outbound_support import (
    ANSWERS,
    FROM,
    WebhookReceiver,
    carrier_channels,
    make_account,
    outbound_config,
    wait_status,
)
from tests.store_support import store_on
from trunx import accounts, logs, webhook_sign
from trunx.models import Account, Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "+12025550199"


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx, sounds_dir=str(pbx.sounds_dir_host),
                           asterisk_sounds_dir=pbx.sounds_dir_in_root, gather_timeout=2.0,
                           recording_spool_dir=str(pbx.recordings_dir_host),
                           asterisk_recording_spool_dir=pbx.recordings_dir_in_root,
                           engine_http_port=0)


@pytest.fixture
def hooks():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def account(cfg, redis, hooks):
    acc = make_account(cfg, webhook_url=hooks.url)
    stage_prompts(acc, cfg)
    publish_demo(store_on(redis), acc, cfg)
    return acc


@pytest.fixture
def json_log():
    """The engine's log as JSON lines (trunx/logs.py), captured from the root logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root, engine_log = logging.getLogger(), logging.getLogger("agi_server")
    level = engine_log.level
    root.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        engine_log.setLevel(level)


def sample(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search(r"^" + pattern + r"$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def http_get(engine, path: str) -> requests.Response:
    url = f"http://127.0.0.1:{engine.health.port}{path}"
    return await asyncio.to_thread(requests.get, url, timeout=5)


async def wait_for(predicate, timeout: float = 30.0):
    async with asyncio.timeout(timeout):
        while not (found := predicate()):
            await asyncio.sleep(0.05)
    return found


async def test_an_inbound_call_moves_the_metrics_logs_lists_and_webhooks(
        cfg, account, redis, pbx_ami, hooks, json_log):
    api = create_app(cfg, redis=redis).test_client()
    auth = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    async with running_engine(cfg) as engine:
        assert (await http_get(engine, "/healthz")).json() == {"status": "ok"}
        await wait_for(engine.ami.connected.is_set)
        ready = await http_get(engine, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"agi": "ok", "ami": "ok", "redis": "ok",
                                          "database": "ok"}
        before = (await http_get(engine, "/metrics")).text
        assert sample(before, "trunx_ami_connected") == 1

        call = await originate_local(pbx_ami, SEED_DID, "w1-d1-w1.5-d2",
                                     caller_id=f"Test <{CALLER}>")
        row = await wait_for(lambda: Call.get_or_none(Call.uniqueid == call.callee_id,
                                                     Call.ended_at.is_null(False)), 60)
        await wait_for(lambda: len(hooks.delivered()) >= 2)
        after = (await http_get(engine, "/metrics")).text

    # the figures moved by exactly this call
    for name, labels, delta in (
            ("trunx_calls_total", {"direction": "inbound", "outcome": "hangup"}, 1),
            ("trunx_ivr_node_visits_total", {"ivr": "qualify-business", "node": "welcome"}, 1),
            ("trunx_ivr_node_visits_total", {"ivr": "qualify-business",
                                             "node": "unqualified"}, 1),
            ("trunx_ivr_gathers_total", {"outcome": "digits"}, 2),
            ("trunx_agi_sessions_total", {"result": "calls"}, 1),
            ("trunx_webhook_deliveries_total", {"result": "delivered"}, 2)):
        assert sample(after, name, **labels) - sample(before, name, **labels) == delta, name
    assert sample(after, "trunx_ivr_prompts_missing_total") == 0

    # a JSON line per call, with the call's id, account and the node it ended in
    lines = [json.loads(x) for x in json_log.getvalue().splitlines()]
    (ended,) = [x for x in lines if x["message"].startswith("inbound call from")]
    assert (ended["call_id"], ended["account_id"], ended["node"]) == (
        row.id, account.id, "unqualified")

    # the call list shows it, with its path
    listed = api.get("/api/voice?direction=inbound", headers=auth).get_json()
    (item,) = listed["calls"]
    assert (item["id"], item["ivr"], item["outcome"]) == (row.id, "qualify-business", "hangup")
    assert [s["node"] for s in item["path"] if s["event"] == "enter"] == [
        "welcome", "has_business", "unqualified"]
    assert [s["digits"] for s in item["path"] if s["event"] == "digits"] == ["1", "2"]
    welcome = next(s for s in item["path"] if s["event"] == "prompt")
    goodbye = next(s for s in item["path"] if s["event"] == "played")
    assert 0 < welcome["heardShare"] < 1          # the caller pressed 1 a second in
    assert goodbye["heardShare"] == pytest.approx(1.0, abs=0.05)     # heard to the end

    # the signed webhooks: started, then completed with the same path
    secret = Account.get_by_id(account.id).webhook_secret
    for r in hooks.requests:
        h = r["headers"]
        assert webhook_sign.verify(secret, h["X-Trunx-Timestamp"], r["body"],
                                   h["X-Trunx-Signature"])
    started, completed = hooks.delivered()
    assert (started["type"], started["call"]["id"], started["call"]["from"]) == (
        "call.started", row.id, CALLER)
    assert completed["type"] == "call.completed"
    assert completed["call"]["path"] == item["path"]
    assert completed["call"]["outcome"] == "hangup"


async def test_a_retried_post_places_one_call_and_a_retried_action_acts_once(
        cfg, redis, carrier_ami, hooks):
    account = make_account(cfg, webhook_url=hooks.url)
    client = create_app(cfg, redis=redis).test_client()
    auth = {"Authorization": f"Bearer {accounts.create_key(account)}"}
    h = {**auth, "Idempotency-Key": "crm-order-7"}
    async with running_engine(cfg) as engine:
        before = (await http_get(engine, "/metrics")).text
        answers = await asyncio.gather(*(asyncio.to_thread(   # a client each: concurrent
            client.application.test_client().post, "/api/voice",
            json={"from": FROM, "to": ANSWERS}, headers=h) for _ in range(3)))
        assert {r.status_code for r in answers} == {201}
        (call_id,) = {r.get_json()["id"] for r in answers}
        await wait_status(call_id, {"answered"})
        again = client.post("/api/voice", json={"from": FROM, "to": ANSWERS}, headers=h)
        assert again.get_json()["id"] == call_id

        live = f"/v1/voice/accounts/{account.id}/calls"
        await wait_for(lambda: client.get(live, headers=auth).get_json()["count"] == 1)
        key = {**h, "Idempotency-Key": "dtmf-once"}
        firsts = [client.post(f"{live}/{call_id}/dtmf", json={"digits": "5"}, headers=key)
                  for _ in range(2)]
        assert [r.status_code for r in firsts] == [200, 200]
        assert firsts[0].get_json() == firsts[1].get_json()
        await wait_for(lambda: engine.registry.runner.stats.get("dtmf") == 1)
        # a recording's file, once finished, is announced on the webhook
        r = client.post(f"{live}/{call_id}/record", json={"format": "wav"}, headers=auth)
        assert r.status_code == 200, r.get_json()
        rec_id = r.get_json()["recording_uuid"]
        r = await asyncio.to_thread(client.delete, f"{live}/{call_id}/record", headers=auth)
        assert r.get_json()["status"] == "stopped"
        ready = await wait_for(lambda: [b for b in hooks.delivered()
                                        if b["type"] == "recording.ready"])
        r = await asyncio.to_thread(client.delete, f"/api/voice/{call_id}", headers=auth)
        assert r.status_code == 200
        await wait_status(call_id)
        after = (await http_get(engine, "/metrics")).text
    assert len(carrier_channels(carrier_ami, ANSWERS)) == 1
    assert Call.select().count() == 1
    assert engine.registry.runner.stats == {"dtmf": 1, "record": 1, "record_stop": 1}
    ((recording,),) = [[b["recording"] for b in ready]]
    assert (recording["recording_uuid"], recording["callId"], recording["status"]) == (
        rec_id, call_id, "stopped")
    assert recording["url"].endswith(f"/recordings/{rec_id}.wav")
    assert recording["duration"] is not None and recording["format"] == "wav"
    assert sample(after, "trunx_calls_total", direction="outbound", outcome="completed") - \
        sample(before, "trunx_calls_total", direction="outbound", outcome="completed") == 1
    assert sample(after, "trunx_action_latency_seconds_count", action="dtmf") == 1
    assert sample(after, "trunx_originate_queue_depth") == 0
