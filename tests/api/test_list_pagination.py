"""Every list pages the same way (admin_api/pagination.py): `limit`, an opaque `nextCursor`,
no row lost or repeated when rows are added between pages; without `limit`, the lists the
seeds say return everything still do, in the seed's exact shape."""
from __future__ import annotations

import copy

import pytest

from tests.api.conftest import SEED_TREE
from tests.api.test_openapi import conforms
from trunx.models import Agent, new_uuid


def walk(client, tenant, path: str, key: str, limit: int) -> list:
    items, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(path + query, headers=tenant.headers)
        assert r.status_code == 200, r.get_json()
        conforms(r, path, "get")
        body = r.get_json()
        assert len(body[key]) <= limit
        items += body[key]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


def make_suppressions(client, tenant, n: int, start: int = 0) -> list[str]:
    numbers = [f"+1415555{start + i:04d}" for i in range(n)]
    for number in numbers:
        assert client.post("/api/suppressions", json={"number": number},
                           headers=tenant.headers).status_code == 201
    return numbers


def test_suppressions_page_in_order_and_a_new_row_lands_at_the_end(client, tenant):
    numbers = make_suppressions(client, tenant, 5)
    first = client.get("/api/suppressions?limit=2", headers=tenant.headers).get_json()
    assert [s["number"] for s in first["suppressions"]] == numbers[:2]
    make_suppressions(client, tenant, 1, start=100)       # added between pages
    second = client.get(f"/api/suppressions?limit=2&cursor={first['nextCursor']}",
                        headers=tenant.headers).get_json()
    assert [s["number"] for s in second["suppressions"]] == numbers[2:4]
    rest = client.get(f"/api/suppressions?limit=10&cursor={second['nextCursor']}",
                      headers=tenant.headers).get_json()
    assert [s["number"] for s in rest["suppressions"]] == [numbers[4], "+14155550100"]
    assert rest["nextCursor"] is None


def test_dids_ivrs_and_audio_page(client, tenant):
    dids = [f"+1949555{i:04d}" for i in range(4)]
    for number in dids:
        client.post("/api/dids", json={"number": number}, headers=tenant.headers)
    assert [d["number"] for d in walk(client, tenant, "/api/dids", "dids", 3)] == dids
    ids = []
    for n in range(3):
        tree = {**copy.deepcopy(SEED_TREE), "id": f"tree-{n}"}
        assert client.post("/ivr", json=tree, headers=tenant.headers).status_code == 201
        ids.append(f"tree-{n}")
    assert [i["id"] for i in walk(client, tenant, "/ivr", "ivrs", 2)] == ids
    made = [client.post("/audio", json={"name": f"a{n}", "text": f"number {n}",
                                        "voice": "en-us", "engine": "standard"},
                        headers=tenant.headers).get_json()["id"] for n in range(3)]
    assert [a["id"] for a in walk(client, tenant, "/audio", "audio", 2)] == made


def test_without_limit_the_seed_lists_keep_their_shape(client, tenant):
    make_suppressions(client, tenant, 2)
    assert set(client.get("/audio", headers=tenant.headers).get_json()) == {"audio"}
    assert set(client.get("/ivr", headers=tenant.headers).get_json()) == {"ivrs", "count"}
    body = client.get("/api/suppressions", headers=tenant.headers).get_json()
    assert set(body) == {"suppressions", "count"} and body["count"] == 2


def test_agents_keep_the_seed_default_of_50_newest_first(client, tenant):
    for n in range(53):
        Agent.create(id=new_uuid(), account=tenant.id, name=f"agent {n}", prompt="p")
    body = client.get("/api/voice/agents", headers=tenant.headers).get_json()
    assert body["count"] == 50 and body["nextCursor"]
    rest = client.get(f"/api/voice/agents?cursor={body['nextCursor']}",
                      headers=tenant.headers).get_json()
    assert rest["count"] == 3 and rest["nextCursor"] is None
    names = [a["name"] for a in body["agents"] + rest["agents"]]
    assert len(set(names)) == 53


@pytest.mark.parametrize("path", ["/audio", "/ivr", "/api/dids", "/api/suppressions",
                                  "/api/voice/agents"])
def test_bad_limit_or_cursor_names_the_field(client, tenant, path):
    for query, field in (("?limit=x", "limit"), ("?cursor=AAAA", "cursor")):
        r = client.get(path + query, headers=tenant.headers)
        assert r.status_code == 422, (path, query)
        assert r.get_json()["error"]["details"][0]["field"] == field
