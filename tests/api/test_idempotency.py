"""Idempotency-Key (admin_api/idempotency.py): a retry answers the first response and never
acts twice, however many retries race; a failed request lets a retry run; the key is
bound to its request. The carrier-side proof (one call placed) is
tests/integration/test_observe_asterisk.py."""
from __future__ import annotations

import threading

from tests.api.test_call_actions_api import commands, go_live, path
from trunx import redis_schema
from trunx.models import Call

FROM, TO = "+14155559876", "+14155551234"


def post_call(client, tenant, key: str | None, **body):
    headers = dict(tenant.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/voice", json={"from": FROM, "to": TO, **body}, headers=headers)


def test_a_retry_answers_the_first_response_and_places_nothing(client, tenant, redis):
    client.post("/api/dids", json={"number": FROM}, headers=tenant.headers)
    first = post_call(client, tenant, "order-42")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = post_call(client, tenant, "order-42")
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Call.select().count() == 1
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1
    assert 0 < redis.ttl(redis.keys("trunx:idem:*")[0]) <= 24 * 3600
    # without a key, or with another, a POST is a new call
    assert post_call(client, tenant, None).get_json()["id"] != first.get_json()["id"]
    assert post_call(client, tenant, "order-43").get_json()["id"] != first.get_json()["id"]
    assert Call.select().count() == 3


def test_concurrent_retries_place_one_call(app, tenant, redis):
    app.test_client().post("/api/dids", json={"number": FROM}, headers=tenant.headers)
    start = threading.Barrier(8)
    answers = []

    def send():
        client = app.test_client()
        start.wait()
        answers.append(post_call(client, tenant, "burst-1"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in answers} == {201}
    assert len({r.get_json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
    assert Call.select().count() == 1
    assert redis.xlen(redis_schema.ORIGINATE_STREAM) == 1


def test_a_failed_request_frees_its_key_and_a_key_is_bound_to_its_request(client, tenant):
    client.post("/api/dids", json={"number": FROM}, headers=tenant.headers)
    bad = post_call(client, tenant, "k-1", to="12345")
    assert bad.status_code == 422 and Call.select().count() == 0
    good = post_call(client, tenant, "k-1")          # fixed and sent again: it runs
    assert good.status_code == 201 and Call.select().count() == 1
    other = post_call(client, tenant, "k-1", to="+14155550000")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency-key-reused"
    assert other.get_json()["error"]["details"] == {"field": "Idempotency-Key"}
    assert Call.select().count() == 1


def test_a_request_still_running_answers_409_after_the_wait(app, tenant, redis):
    """A reservation held by a request that never finished (its process died)."""
    app.config["IDEMPOTENCY_WAIT"] = 0.2
    client = app.test_client()
    client.post("/api/dids", json={"number": FROM}, headers=tenant.headers)
    first = post_call(client, tenant, "k-2")
    (name,) = redis.keys("trunx:idem:*")
    held = redis.get(name).replace('"state": "done"', '"state": "pending"')
    redis.set(name, held)
    r = post_call(client, tenant, "k-2")
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "idempotency-key-in-progress"
    assert Call.select().count() == 1 and first.status_code == 201


def test_bad_keys_name_the_header(client, tenant):
    for key in ("x" * 256, "tab\there"):
        r = post_call(client, tenant, key)
        assert r.status_code == 422
        assert r.get_json()["error"]["details"][0]["field"] == "Idempotency-Key"


def test_keys_belong_to_an_account(client, tenant, other):
    for t in (tenant, other):
        assert client.post("/api/dids", json={"number": FROM if t is tenant else TO},
                           headers=t.headers).status_code == 201
    a = post_call(client, tenant, "same")
    b = client.post("/api/voice", json={"from": TO, "to": FROM},
                    headers={**other.headers, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert a.get_json()["id"] != b.get_json()["id"]


def test_a_call_action_acts_once(client, tenant, redis):
    go_live(redis, tenant.id)
    headers = {**tenant.headers, "Idempotency-Key": "dtmf-1"}
    first = client.post(path(tenant, "dtmf"), json={"digits": "12#"}, headers=headers)
    again = client.post(path(tenant, "dtmf"), json={"digits": "12#"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert [c["action"] for c in commands(redis)] == ["dtmf"]
