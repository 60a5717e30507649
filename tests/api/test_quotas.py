"""Quotas per account (admin_api/quotas.py) and numbers that belong to accounts.

Requests per second and queued calls run against the real gunicorn API (several workers
sharing one Redis count); concurrent calls, stored audio and operator-allocated numbers
against the app in-process, on the same real Redis and SQLite."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tests.api.conftest import state
from tests.api.test_bad_input import state as served_state
from tests.api.test_seed_examples import api_server
from trunx.models import AudioAsset, Call, Did, new_uuid

DID = "+19495551234"
OTHER_DID = "+19495551299"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("quotas"), TRUNX_API_RATE_LIMIT="5",
                    TRUNX_MAX_QUEUED_CALLS="3") as server:
        tenants = []
        for name, number in (("A", DID), ("B", OTHER_DID)):
            headers = {"Authorization": f"Bearer {server.account(name)}"}
            r = requests.post(server.base + "/api/dids", json={"number": number},
                              headers=headers, timeout=10)
            assert r.status_code == 201, r.text
            tenants.append(headers)
        yield server, tenants


def _next_second_start():
    """Wait (briefly) for a fresh second, so a burst falls in one counting window."""
    while time.time() % 1 > 0.05:
        time.sleep(0.005)


def test_requests_past_the_rate_are_429_and_other_accounts_go_on(served):
    server, (a, b) = served
    _next_second_start()
    answers = [requests.get(server.base + "/api/dids", headers=a, timeout=10)
               for _ in range(10)]
    other = requests.get(server.base + "/api/dids", headers=b, timeout=10)
    statuses = [r.status_code for r in answers]
    assert statuses.count(429) >= 1, statuses
    assert statuses.count(200) <= 10 - 1 and statuses[:5] == [200] * 5, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == {
        "code": "rate-limited", "message": refused.json()["error"]["message"],
        "details": {"limit_per_second": 5, "retry_after": 1}}
    assert other.status_code == 200
    time.sleep(1.1)     # the next second is a new window (the quota under test is per second)
    assert requests.get(server.base + "/api/dids", headers=a, timeout=10).status_code == 200


def test_queued_calls_past_the_quota_are_refused_and_nothing_is_stored(served):
    server, (a, b) = served
    placed = []
    for n in range(3):
        time.sleep(0.25)     # stay under the 5/s request rate of this server
        r = requests.post(server.base + "/api/voice", headers=a, timeout=10,
                          json={"from": DID, "to": f"+1415555010{n}"})
        assert r.status_code == 201, r.text
        placed.append(r.json()["id"])
    time.sleep(0.25)
    before = served_state(server)
    r = requests.post(server.base + "/api/voice", headers=a, timeout=10,
                      json={"from": DID, "to": "+14155550109"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "quota-exceeded"
    assert r.json()["error"]["details"] == {"quota": "queued_calls", "limit": 3, "used": 3}
    assert served_state(server) == before
    # account B is not held back by A's queue
    r = requests.post(server.base + "/api/voice", headers=b, timeout=10,
                      json={"from": OTHER_DID, "to": "+14155550109"})
    assert r.status_code == 201, r.text


def test_a_number_held_by_one_account_is_not_another_accounts(served):
    server, (a, b) = served
    time.sleep(0.25)
    r = requests.post(server.base + "/api/dids", json={"number": DID}, headers=b, timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "did-exists")
    time.sleep(0.25)
    # nor can B place a call from it, or set it as a transfer's caller id
    r = requests.post(server.base + "/api/voice", headers=b, timeout=10,
                      json={"from": DID, "to": "+14155550100"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["code"] == "unknown-did"


def test_the_operator_allocates_numbers(served):
    server, _ = served
    account = subprocess.run([sys.executable, "-m", "trunx", "accounts", "create", "C"],
                             env=server.env, capture_output=True, text=True, check=True)
    account_id = account.stdout.split()[1]

    def allocate(number, who):
        return subprocess.run([sys.executable, "-m", "trunx", "dids", "allocate", number, who],
                              env=server.env, capture_output=True, text=True)

    out = allocate("+19495551288", account_id)
    assert out.returncode == 0 and out.stdout.strip() == f"did +19495551288 {account_id}"
    taken = allocate(DID, account_id)                  # A holds it
    assert taken.returncode == 1 and "held by another account" in taken.stderr
    assert allocate("+1949555128\n8", account_id).returncode == 2


# -- in-process: the same checks, state set up in the record --------------------------------
def test_concurrent_calls_past_the_quota_are_refused(make_app, config, tenant, redis):
    client = make_app(config.replace(max_concurrent_calls=2)).test_client()
    Did.create(number=DID, account=tenant.id)
    for n in range(2):
        Call.create(id=new_uuid(), call_sid=f"CA{n}", account=tenant.id,
                    direction="outbound", from_number=DID, to_number="+14155550100",
                    status="answered", provider="asterisk")
    before = state(config, redis)
    r = client.post("/api/voice", headers=tenant.headers,
                    json={"from": DID, "to": "+14155550101"})
    assert r.status_code == 429
    assert r.json["error"]["details"] == {"quota": "concurrent_calls", "limit": 2, "used": 2}
    assert state(config, redis) == before


def test_stored_audio_past_the_quota_is_refused(make_app, config, tenant, redis):
    client = make_app(config.replace(audio_quota_bytes=40_000)).test_client()
    first = client.post("/audio", headers=tenant.headers,
                        json={"name": "one", "text": "Hello there, and welcome."})
    assert first.status_code == 201, first.json
    used = round(first.json["durationSeconds"] * 16_000) + 44
    assert used < 40_000
    second = client.post("/audio", headers=tenant.headers, json={
        "name": "two", "text": "Thank you for calling. Please hold while we connect you."})
    assert second.status_code == 429, second.json
    details = second.json["error"]["details"]
    assert details["quota"] == "audio_bytes" and details["limit"] == 40_000
    assert abs(details["used"] - used) <= 200          # durationSeconds is rounded
    assert AudioAsset.select().where(AudioAsset.account == tenant.id).count() == 1


def test_self_service_dids_off_leaves_numbers_to_the_operator(make_app, config, tenant, redis):
    client = make_app(config.replace(self_service_dids=False)).test_client()
    before = state(config, redis)
    r = client.post("/api/dids", headers=tenant.headers, json={"number": DID})
    assert (r.status_code, r.json["error"]["code"]) == (403, "did-allocation-by-operator")
    assert state(config, redis) == before
