"""POST /ivr/:id/simulate, GET /ivr/:id/diagram(.svg), GET /ivr/:id/stats
(admin_api/ivr_tools.py) against a real app, SQLite file, Redis and Graphviz's dot."""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from agi_server.calls.record import save_rows
from tests.api.conftest import SEED_TREE
from tests.api.test_openapi import conforms
from trunx.models import new_uuid, utcnow


@pytest.fixture
def seeded(client, tenant):
    r = client.post("/ivr", json=SEED_TREE, headers=tenant.headers)
    assert r.status_code == 201
    return tenant


def sim(client, tenant, inputs, **extra):
    return client.post("/ivr/qualify-business/simulate", json={"inputs": inputs, **extra},
                       headers=tenant.headers)


def test_simulate_1_then_2_walks_to_the_hangup(client, seeded):
    r = sim(client, seeded, ["1", "2"])
    assert r.status_code == 200, r.json
    conforms(r, "/ivr/{ivr_id}/simulate", "post")
    body = r.json
    assert [v["node"] for v in body["nodes"]] == ["welcome", "has_business", "unqualified"]
    assert body["nodes"][0] == {"node": "welcome", "type": "gather",
                                "prompt": {"audio": "welcome", "seconds": None},
                                "heard": True, "result": "digits", "digits": "1",
                                "next": "has_business"}
    assert body["outcome"] == "hangup" and body["unusedInputs"] == []
    assert [(s["node"], s["event"]) for s in body["path"]] == [
        ("welcome", "enter"), ("welcome", "prompt"), ("welcome", "digits"),
        ("has_business", "enter"), ("has_business", "prompt"), ("has_business", "digits"),
        ("unqualified", "enter"), ("unqualified", "played"), ("unqualified", "hangup")]


def test_simulate_timeouts_invalid_keys_and_max_tries(client, seeded):
    # welcome's timeout goes back to welcome; has_business replays on timeout/invalid, and
    # its third miss (max_tries 3) ends the call politely
    body = sim(client, seeded, ["timeout", "1", "7", "timeout", "5"]).json
    assert [(v["node"], v.get("result"), v.get("digits")) for v in body["nodes"]] == [
        ("welcome", "timeout", None), ("welcome", "digits", "1"),
        ("has_business", "invalid", "7"), ("has_business", "timeout", None),
        ("has_business", "invalid", "5")]
    assert body["outcome"] == "max-tries"


def test_simulate_stops_where_the_inputs_end_and_dnc_suppresses(client, seeded):
    body = sim(client, seeded, ["1"]).json
    assert body["outcome"] == "caller-hangup" and body["nodes"][-1]["node"] == "has_business"
    body = sim(client, seeded, ["9", "1"]).json
    assert body["outcome"] == "suppressed" and body["unusedInputs"] == ["1"]


def test_simulate_an_old_version_and_bad_input(client, seeded):
    nodes = copy.deepcopy(SEED_TREE["nodes"])
    nodes["welcome"]["gather"] = {"1": "unqualified", "9": "dnc"}
    assert client.patch("/ivr/qualify-business", json={"nodes": nodes},
                        headers=seeded.headers).status_code == 200
    assert sim(client, seeded, ["1"]).json["nodes"][1]["node"] == "unqualified"
    assert sim(client, seeded, ["1"], version=1).json["nodes"][1]["node"] == "has_business"
    r = sim(client, seeded, ["1", "x"])
    conforms(r, "/ivr/{ivr_id}/simulate", "post")
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "inputs[1]"
    r = sim(client, seeded, "1")
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "inputs"
    r = sim(client, seeded, ["1"], version=9)
    assert r.status_code == 404 and r.json["error"]["code"] == "version-not-found"
    r = client.post("/ivr/nope/simulate", json={"inputs": []}, headers=seeded.headers)
    assert r.status_code == 404
    # the fuzz run's find: a version past SQLite's integers was a 500
    r = sim(client, seeded, [], version=1_258_305_210_256_177_766_596_608)
    assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "version"
    for version in ("²", "١", "99999999999"):
        r = client.get(f"/ivr/qualify-business/stats?version={version}",
                       headers=seeded.headers)
        assert r.status_code == 422 and r.json["error"]["details"][0]["field"] == "version"


def test_diagram_svg_names_every_node_and_dashes_timeouts(client, seeded):
    r = client.get("/ivr/qualify-business/diagram.svg", headers=seeded.headers)
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    root = ET.fromstring(r.data)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    for name in SEED_TREE["nodes"]:
        assert name in texts
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"node-{n}" for n in SEED_TREE["nodes"]} <= ids
    dot = client.get("/ivr/qualify-business/diagram?format=dot", headers=seeded.headers)
    assert dot.status_code == 200
    dashed = [ln for ln in dot.get_data(as_text=True).splitlines() if "style=dashed" in ln]
    # both misses of each gather replay it: one dashed edge each, labelled with both
    assert len(dashed) == 2 and all('"timeout\\ninvalid"' in ln for ln in dashed)
    mermaid = client.get("/ivr/qualify-business/diagram?format=mermaid",
                         headers=seeded.headers)
    assert mermaid.get_data(as_text=True).startswith("flowchart TD")
    bad = client.get("/ivr/qualify-business/diagram?format=png", headers=seeded.headers)
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["field"] == "format"


def _call(tenant, path, outcome, version=1, **extra):
    return dict(id=new_uuid(), account=tenant.id, direction="inbound", status="completed",
                ivr_id="qualify-business", ivr_version=version, path=path,
                outcome=outcome, created_at=extra.get("created_at", utcnow()))


def test_stats_count_each_node_and_edge(client, seeded, app):
    e = lambda node, event, **d: {"node": node, "event": event, "t": 0, **d}  # noqa: E731
    took_1_2 = [e("welcome", "enter"), e("welcome", "prompt", endpos=4000, file="welcome"),
                e("welcome", "digits", digits="1"), e("has_business", "enter"),
                e("has_business", "timeout"), e("has_business", "enter"),
                e("has_business", "digits", digits="2"), e("unqualified", "enter"),
                e("unqualified", "hangup")]
    hung_up = [e("welcome", "enter"), e("welcome", "invalid", digits="7"), e("welcome", "enter")]
    rows = [_call(seeded, took_1_2, "hangup")] * 3 + [_call(seeded, hung_up, "caller-hangup")]
    with app.app_context():     # as the engine writes its records
        save_rows(app.extensions["trunx.store"].db, [{**r, "id": new_uuid()} for r in rows])
    r = client.get("/ivr/qualify-business/stats", headers=seeded.headers)
    assert r.status_code == 200, r.json
    conforms(r, "/ivr/{ivr_id}/stats", "get")
    body = r.json
    assert body["calls"] == 4 and body["outcomes"] == {"hangup": 3, "caller-hangup": 1}
    nodes = {n["node"]: n for n in body["nodes"]}
    assert nodes["welcome"]["entered"] == 4 and nodes["welcome"]["visits"] == 5
    assert nodes["welcome"]["keys"] == {"1": 3} and nodes["welcome"]["invalid"] == 1
    assert nodes["welcome"]["hangups"] == 1
    assert nodes["welcome"]["exits"] == {"has_business": {"1": 3}, "welcome": {"invalid": 1}}
    assert nodes["has_business"]["timeouts"] == 3 and nodes["has_business"]["entered"] == 3
    assert nodes["has_business"]["visits"] == 6
    funnel = {f["node"]: f["calls"] for f in body["funnel"]}
    assert funnel == {"welcome": 4, "transfer_ai": 0, "unqualified": 3, "dnc": 0}
    # since= after every call: nothing; a bad time names its field
    later = client.get("/ivr/qualify-business/stats?since=2999-01-01T00:00:00Z",
                       headers=seeded.headers)
    assert later.json["calls"] == 0
    bad = client.get("/ivr/qualify-business/stats?until=yesterday", headers=seeded.headers)
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["field"] == "until"
    overlay = client.get("/ivr/qualify-business/diagram?format=dot&overlay=stats",
                         headers=seeded.headers).get_data(as_text=True)
    assert 'label="1 (3)"' in overlay and 'label="timeout (0)\\ninvalid (1)"' in overlay


def test_stats_follow_a_row_rewritten_when_its_call_ends(client, seeded, app):
    e = lambda node, event, **d: {"node": node, "event": event, "t": 0, **d}  # noqa: E731
    one = [e("welcome", "enter"), e("welcome", "digits", digits="1"), e("has_business", "enter")]
    nine = [e("welcome", "enter"), e("welcome", "digits", digits="9"), e("dnc", "enter")]
    ended = utcnow()
    early = {**_call(seeded, one[:1], "caller-hangup"), "ended_at": None}   # an AI bridge's
    done = {**_call(seeded, one, "hangup"), "ended_at": ended}
    database = app.extensions["trunx.store"].db
    save_rows(database, [early, done])

    def keys():
        body = client.get("/ivr/qualify-business/stats", headers=seeded.headers).json
        return body["calls"], {n["node"]: n["keys"] for n in body["nodes"]}["welcome"]

    assert keys() == (2, {"1": 1})
    assert keys() == (2, {"1": 1})
    # both rows written again when their calls end: their visits are replaced, not added
    save_rows(database, [{**early, "path": nine, "ended_at": utcnow()},
                         {**done, "path": nine, "ended_at": utcnow()}])
    assert keys() == (2, {"9": 2})
