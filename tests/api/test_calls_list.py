"""GET /api/voice: the account's calls, newest first, filtered and paged; an inbound call's
IVR path in its public form (trunx/call_path.py). Inbound rows are written here in the
form the engine writes them (agi_server/calls/record.py CallRecord.row); the integration
test tests/integration/test_observe_asterisk.py lists a real call's."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.api.test_openapi import conforms
from trunx.models import AudioAsset, Call, new_uuid

FROM, TO = "+14155559876", "+14155551234"
T0 = dt.datetime(2026, 3, 9, 15, 30, 0)


def add_call(account: str, minute: int, **fields) -> Call:
    values = dict(id=new_uuid(), account=account, direction="outbound", from_number=FROM,
                  to_number=TO, status="completed", created_at=T0 + dt.timedelta(minutes=minute),
                  duration=3.0)
    return Call.create(**{**values, **fields})


def inbound(account: str, minute: int, asset_id: str = "aud_00000000000000aa") -> Call:
    path = [
        {"node": "welcome", "event": "enter", "t": 0.01},
        {"node": "welcome", "event": "prompt", "t": 1.21,
         "file": f"/var/lib/trunx/sounds/{asset_id}", "endpos": 8000, "barge_in": True},
        {"node": "welcome", "event": "digits", "t": 1.22, "digits": "1"},
        {"node": "has_business", "event": "enter", "t": 1.23},
    ]
    return add_call(account, minute, direction="inbound", from_number="+12025550142",
                    to_number="+19495551234", call_sid=None, ivr_id="qualify-business",
                    ivr_version=2, path=path, outcome="transferred", answered_at=T0)


def listed(client, tenant, query: str = "") -> dict:
    r = client.get(f"/api/voice{query}", headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    conforms(r, "/api/voice", "get")
    return r.get_json()


def test_newest_first_both_directions_and_the_inbound_path(client, tenant, other):
    AudioAsset.create(id="aud_00000000000000aa", account=tenant.id, name="welcome",
                      source="tts", content_hash="x", duration_seconds=4.0, file_path="/x")
    old = add_call(tenant.id, 0)
    ivr_call = inbound(tenant.id, 5)
    add_call(other.id, 9)                     # another account's: never shown
    body = listed(client, tenant)
    assert [c["id"] for c in body["calls"]] == [ivr_call.id, old.id]
    assert body["count"] == 2 and body["nextCursor"] is None
    got = body["calls"][0]
    assert (got["direction"], got["ivr"], got["ivrVersion"], got["outcome"]) == (
        "inbound", "qualify-business", 2, "transferred")
    assert [s["node"] for s in got["path"] if s["event"] == "enter"] == [
        "welcome", "has_business"]
    prompt = got["path"][1]
    # 8,000 samples heard of a 4 s prompt; the host path is not shown, the asset id is
    assert (prompt["audio"], prompt["heard"], prompt["heardShare"], prompt["bargeIn"],
            prompt["at"]) == ("aud_00000000000000aa", 1.0, 0.25, True, 1.21)
    assert "file" not in prompt and "endpos" not in prompt
    assert got["path"][2]["digits"] == "1"
    assert "path" not in body["calls"][1] and "ivr" not in body["calls"][1]
    # the call's own GET shows the same
    single = client.get(f"/api/voice/{ivr_call.id}", headers=tenant.headers).get_json()
    assert single["path"] == got["path"]


def test_filters(client, tenant):
    a = add_call(tenant.id, 0, status="failed", end_reason="busy")
    b = add_call(tenant.id, 1, to_number="+14155550000")
    c = inbound(tenant.id, 2)

    def ids(q):
        return [x["id"] for x in listed(client, tenant, q)["calls"]]

    assert ids("?direction=inbound") == [c.id]
    assert ids("?direction=outbound") == [b.id, a.id]
    assert ids("?status=failed") == [a.id]
    assert ids("?to=%2B14155550000") == [b.id]
    assert ids("?to=+14155550000") == [b.id]          # an unescaped + arrives as a space
    assert ids("?from=%2B12025550142") == [c.id]
    assert ids("?since=2026-03-09T15:31:00Z") == [c.id, b.id]
    assert ids("?until=2026-03-09T15:31:00.000Z") == [a.id]
    assert ids("?since=2026-03-09T16:30:00%2B01:00&until=2026-03-09T15:32:00Z") == [b.id, a.id]
    assert ids("?direction=outbound&status=completed") == [b.id]


def test_pages_are_stable_when_calls_arrive_between_them(client, tenant):
    made = [add_call(tenant.id, m) for m in range(7)]
    # two calls in the same instant: the id breaks the tie, neither is lost
    twin = add_call(tenant.id, 3)
    expected = sorted(made + [twin], key=lambda c: (c.created_at, c.id), reverse=True)
    first = listed(client, tenant, "?limit=3")
    assert first["count"] == 3 and first["nextCursor"]
    add_call(tenant.id, 60)                   # a newer call arrives: not in later pages
    seen = [c["id"] for c in first["calls"]]
    cursor = first["nextCursor"]
    while cursor:
        page = listed(client, tenant, f"?limit=3&cursor={cursor}")
        seen += [c["id"] for c in page["calls"]]
        cursor = page["nextCursor"]
    assert seen == [c.id for c in expected]


@pytest.mark.parametrize("query, field, code", [
    ("?direction=sideways", "direction", "invalid-value"),
    ("?status=ringing-ish", "status", "invalid-value"),
    ("?to=12345", "to", "invalid-number"),
    ("?since=yesterday", "since", "invalid-timestamp"),
    ("?limit=0", "limit", "out-of-range"),
    ("?limit=501", "limit", "out-of-range"),
    ("?cursor=bm9wZQ", "cursor", "invalid-cursor"),
    ("?cursor=%%%", "cursor", "invalid-cursor"),
])
def test_bad_query_names_the_field(client, tenant, query, field, code):
    r = client.get(f"/api/voice{query}", headers=tenant.headers)
    assert r.status_code == 422
    (problem,) = r.get_json()["error"]["details"]
    assert (problem["field"], problem["code"]) == (field, code)


def test_a_cursor_of_another_list_is_refused(client, tenant):
    for n in range(3):
        client.post("/api/suppressions", json={"number": f"+1415555000{n}"},
                    headers=tenant.headers)
    cursor = client.get("/api/suppressions?limit=1",
                        headers=tenant.headers).get_json()["nextCursor"]
    r = client.get(f"/api/voice?cursor={cursor}", headers=tenant.headers)
    assert r.status_code == 422
    assert r.get_json()["error"]["details"][0]["field"] == "cursor"
