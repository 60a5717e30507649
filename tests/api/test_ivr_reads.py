"""GET /ivr/:id answers from a per-worker memo (admin_api/ivr_reads.py). Two app instances
stand for two gunicorn workers: each has its own memo, both share the SQLite file and
Redis. A change made through one is what the other answers next, byte for byte what the
writing request answered, never the bytes it remembered."""
from __future__ import annotations

import copy

import pytest

from tests.api.conftest import SEED_TREE


@pytest.fixture
def workers(make_app, config):
    one, two = make_app(config), make_app(config)
    return one.test_client(), two, two.test_client()


def _remembered(app, tenant, ivr_id="qualify-business") -> bytes:
    return app.extensions["trunx.ivr_memo"]._entries[(tenant.id, ivr_id)][1]


# Answered by a publish only: they depend on the account and the staging target, which
# change without the IVR changing, so a read does not repeat them.
PUBLISH_ONLY = {"no-transfer-target", "audio-not-found"}


def as_read(response) -> dict:
    """A write's answer as a read of the same version answers it."""
    body = response.json
    return {**body, "warnings": [w for w in body["warnings"] if w["code"] not in PUBLISH_ONLY]}


def test_an_update_through_one_worker_is_read_through_the_other(workers, tenant):
    one, two_app, two = workers
    created = one.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    before = two.get("/ivr/qualify-business", headers=tenant.headers)
    assert before.json == as_read(created)        # the memo's answer is the API's answer
    assert _remembered(two_app, tenant) == before.data   # and worker two remembers them

    nodes = copy.deepcopy(SEED_TREE["nodes"])
    nodes["welcome"]["audio"] = "other_welcome.wav"
    patched = one.patch("/ivr/qualify-business", json={"nodes": nodes},
                        headers=tenant.headers)
    assert patched.status_code == 200 and patched.json["version"] == 2
    after = two.get("/ivr/qualify-business", headers=tenant.headers)
    assert after.json == as_read(patched)
    assert after.json["nodes"]["welcome"]["audio"] == "other_welcome.wav"


def test_a_did_assigned_through_one_worker_shows_on_the_other(workers, tenant):
    one, _, two = workers
    one.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).json["dids"] == []
    for number in ("+19495551235", "+19495551234"):
        assert one.post("/api/dids", json={"number": number},
                        headers=tenant.headers).status_code == 201
        one.post("/ivr/qualify-business/assign", json={"did": number}, headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).json["dids"] == \
        ["+19495551234", "+19495551235"]
    one.delete("/api/dids/%2B19495551234", headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).json["dids"] == \
        ["+19495551235"]


def test_deleted_and_made_again_under_the_same_id(workers, tenant):
    one, _, two = workers
    one.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).status_code == 200
    assert one.delete("/ivr/qualify-business", headers=tenant.headers).status_code == 200
    gone = two.get("/ivr/qualify-business", headers=tenant.headers)
    assert gone.status_code == 404 and gone.json["error"]["code"] == "ivr-not-found"
    again = one.post("/ivr", json={"id": "qualify-business",
                                   "nodes": {"bye": {"action": "hangup"}}},
                     headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).data == again.data


def test_another_accounts_ivr_is_not_served_from_the_memo(workers, tenant, other):
    one, _, two = workers
    one.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert two.get("/ivr/qualify-business", headers=tenant.headers).status_code == 200
    r = two.get("/ivr/qualify-business", headers=other.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "ivr-not-found"


def test_warnings_and_start_come_through_the_memo(workers, tenant):
    one, _, two = workers
    tree = {"id": "w", "start": "b",
            "nodes": {"a": {"action": "hangup"}, "b": {"action": "hangup"}}}
    created = one.post("/ivr", json=tree, headers=tenant.headers)
    assert created.json["warnings"] and created.json["start"] == "b"
    assert two.get("/ivr/w", headers=tenant.headers).data == created.data
