"""The console (admin_api/console/) through Flask's test client: signing in keeps the key in
an HttpOnly cookie, form posts need the page's token and the same origin, a revoked key
signs out, and each page shows the account's own data. The browser tests
(tests/integration/test_console_browser.py) drive the same pages in Chromium."""
from __future__ import annotations

import re

import pytest

from tests.api.conftest import SEED_TREE
from trunx.models import ApiKey, Call, new_uuid, utcnow


def sign_in(client, tenant):
    r = client.post("/console/login", data={"key": tenant.key, "next": "/console/ivrs"})
    assert r.status_code == 303 and r.headers["Location"] == "/console/ivrs"
    return r


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)


@pytest.fixture
def signed_in(client, tenant):
    assert client.post("/ivr", json=SEED_TREE, headers=tenant.headers).status_code == 201
    sign_in(client, tenant)
    return tenant


def test_sign_in_sets_an_httponly_strict_cookie_and_pages_need_it(client, tenant):
    r = client.get("/console/ivrs")
    assert r.status_code == 302 and r.headers["Location"] == "/console/login?next=/console/ivrs"
    bad = client.post("/console/login", data={"key": "tk_live_nope"})
    assert bad.status_code == 401 and "not valid" in bad.get_data(as_text=True)
    cookie = sign_in(client, tenant).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    page = client.get("/console/ivrs")
    assert page.status_code == 200 and "Acme Dental" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    # the API itself still wants a Bearer key: the cookie is the console's only
    assert client.get("/ivr").status_code == 401


def test_an_open_redirect_is_refused(client, tenant):
    r = client.post("/console/login", data={"key": tenant.key, "next": "//evil.example/x"})
    assert r.headers["Location"] == "/console/ivrs"


def test_posts_need_the_token_and_the_same_origin(client, signed_in):
    page = client.get("/console/ivrs/qualify-business").get_data(as_text=True)
    token = csrf_of(page)
    url = "/console/ivrs/qualify-business/simulate"
    assert client.post(url, data={"inputs": "1 2"}).status_code == 403
    assert client.post(url, data={"inputs": "1 2", "csrf": "0" * 64}).status_code == 403
    assert client.post(url, data={"inputs": "1 2", "csrf": token},
                       headers={"Origin": "https://evil.example"}).status_code == 403
    ok = client.post(url, data={"inputs": "1 2", "csrf": token},
                     headers={"Origin": "http://localhost"})
    assert ok.status_code == 200
    assert 'id="sim-outcome">hangup<' in ok.get_data(as_text=True)


def test_a_revoked_key_signs_the_console_out(client, signed_in, app):
    assert client.get("/console/ivrs").status_code == 200
    with app.app_context():
        ApiKey.update(revoked_at=utcnow()).where(ApiKey.account == signed_in.id).execute()
    assert client.get("/console/ivrs").status_code == 302


def test_the_ivr_page_draws_the_tree_and_shows_problems_beside_their_node(client, signed_in):
    page = client.get("/console/ivrs/qualify-business").get_data(as_text=True)
    assert "<svg" in page and "<?xml" not in page
    for name in SEED_TREE["nodes"]:
        assert f'id="node&#45;{name}"' in page      # dot writes '-' as a character reference
    token = csrf_of(page)
    # the form as the page shows it, sent back: saved unchanged as version 2
    form = dict(re.findall(r'<input id="(n\d\.[a-z_]+)" name="\1" value="([^"]*)"', page))
    form.update(re.findall(r'<input type="hidden" name="(n\d\.kind)" value="([a-z]+)"', page))
    form.update((k, v.replace("&#34;", '"')) for k, v in re.findall(
        r'<textarea id="(n\d\.gather)" name="\1"[^>]*>(.*?)</textarea>', page, re.S))
    form.update(re.findall(r'<select id="(n\d\.action)" name="\1">.*?<option selected>'
                           r'([a-z]+)</option>', page, re.S))
    form["n0.timeout"] = "soon"
    form["n0.gather"] = "1 = nowhere\n9 = dnc"
    form["n2.to"] = "12345"
    r = client.post("/console/ivrs/qualify-business/definition", data={"csrf": token, **form})
    assert r.status_code == 422
    text = r.get_data(as_text=True)
    beside = re.findall(r'<ul class="problems" id="n(\d)\.([a-z_]+)-problems" '
                        r'data-field="[a-z_]+">(.*?)</ul>', text, re.S)
    assert {(i, f) for i, f, _ in beside} == {("0", "timeout"), ("0", "gather"), ("2", "to")}
    assert "nowhere" in dict(((i, f), m) for i, f, m in beside)[("0", "gather")]
    assert 'value="soon"' in text          # what was typed is shown again
    # nothing was saved: still version 1
    assert client.get("/console/ivrs").get_data(as_text=True).count("<td>1</td>") == 1
    form.update({"n0.timeout": "", "n0.gather": "1 = dnc", "n2.to": "", "n1.remove": "1",
                 "n3.remove": "1", "n2.remove": "1"})
    r = client.post("/console/ivrs/qualify-business/definition", data={"csrf": token, **form})
    assert r.status_code == 303, r.get_data(as_text=True)[-2000:]
    sim = client.post("/console/ivrs/qualify-business/simulate",
                      data={"csrf": token, "inputs": "1"}).get_data(as_text=True)
    assert 'id="sim-outcome">suppressed<' in sim
    page = client.get("/console/ivrs/qualify-business").get_data(as_text=True)
    assert "version 2" in page and 'data-node="has_business"' not in page
    # a new node, added by name and kind (an action starts as a hang-up)
    form = {k: v for k, v in form.items() if k.startswith(("n0.", "n4."))}  # welcome, dnc
    r = client.post("/console/ivrs/qualify-business/definition",
                    data={"csrf": token, **form, "new.name": "bye", "new.kind": "action"})
    assert r.status_code == 303
    page = client.get("/console/ivrs/qualify-business").get_data(as_text=True)
    assert "version 3" in page and 'data-node="bye"' in page


def test_call_log_and_the_path_timeline(client, signed_in, app):
    call_id = new_uuid()
    with app.app_context():
        Call.create(id=call_id, account=signed_in.id, direction="inbound", status="completed",
                    from_number="+12025550100", to_number="+19495551234",
                    ivr_id="qualify-business", ivr_version=1, outcome="hangup",
                    path=[{"node": "welcome", "event": "enter", "t": 0.0},
                          {"node": "welcome", "event": "digits", "digits": "1", "t": 1.5},
                          {"node": "has_business", "event": "enter", "t": 1.5}])
    log = client.get("/console/calls").get_data(as_text=True)
    assert f'/console/calls/{call_id}"' in log and "+12025550100" in log
    page = client.get(f"/console/calls/{call_id}").get_data(as_text=True)
    steps = re.findall(r'data-node="([^"]+)" data-event="([^"]+)"', page)
    assert steps == [("welcome", "enter"), ("welcome", "digits"), ("has_business", "enter")]
    assert "<kbd>1</kbd>" in page
    assert client.get(f"/console/calls/{new_uuid()}").status_code == 404


def test_dnc_add_and_remove_and_a_bad_number_named(client, signed_in, redis):
    token = csrf_of(client.get("/console/dnc").get_data(as_text=True))
    bad = client.post("/console/dnc", data={"csrf": token, "number": "12345"})
    assert bad.status_code == 422 and "E.164" in bad.get_data(as_text=True)
    assert client.post("/console/dnc", data={"csrf": token, "number": "+19495550111",
                                             "reason": "asked"}).status_code == 303
    assert redis.sismember(f"trunx:dnc:{signed_in.id}", "+19495550111")
    assert "+19495550111" in client.get("/console/dnc").get_data(as_text=True)
    assert client.post("/console/dnc/remove", data={"csrf": token, "number": "+19495550111"}
                       ).status_code == 303
    assert not redis.sismember(f"trunx:dnc:{signed_in.id}", "+19495550111")


def test_live_actions_on_a_call_not_in_progress_say_so(client, signed_in):
    token = csrf_of(client.get("/console/calls/live").get_data(as_text=True))
    r = client.post(f"/console/calls/live/{new_uuid()}/dtmf", data={"csrf": token,
                                                                    "digits": "1"})
    assert r.status_code == 404 and "no call" in r.get_data(as_text=True)


def test_other_pages_render(client, signed_in):
    for url in ("/console/audio", "/console/agents", "/console/calls/live",
                "/console/ivrs/qualify-business/diagram.svg"):
        assert client.get(url).status_code == 200, url
    assert client.get("/console/ivrs/nope").status_code == 404


def test_audio_page_plays_the_accounts_own_files(client, signed_in, other):
    asset = client.post("/audio", json={"name": "greeting", "text": "Hello there"},
                        headers=signed_in.headers).json
    page = client.get("/console/audio").get_data(as_text=True)
    src = f'/console/audio/{asset["id"]}/file'
    assert f'<audio controls preload="none" src="{src}"' in page
    with client.get(src) as wav:
        assert wav.status_code == 200 and wav.mimetype == "audio/wav"
        assert wav.data[:4] == b"RIFF" and wav.data[8:12] == b"WAVE"
    theirs = client.post("/audio", json={"name": "x", "text": "Hi"}, headers=other.headers).json
    assert client.get(f'/console/audio/{theirs["id"]}/file').status_code == 404


def test_every_live_button_reaches_the_engines_command_stream(client, signed_in, redis):
    """A live call as the engine announces it (its hash and the account's index); each
    button's form becomes the command the call-actions API would have queued."""
    call_id = new_uuid()
    redis.hset(f"trunx:live:{call_id}", mapping={"account": signed_in.id,
                                                 "direction": "inbound",
                                                 "status": "in-progress"})
    redis.zadd(f"trunx:live-calls:{signed_in.id}", {call_id: 1})
    page = client.get("/console/calls/live").get_data(as_text=True)
    assert f'data-call="{call_id}"' in page
    token = csrf_of(page)
    asset = client.post("/audio", json={"name": "hold", "text": "Please hold"},
                        headers=signed_in.headers).json
    forms = [("dtmf", {"digits": "12#"}), ("speak", {"text": "Hello"}),
             ("play", {"audio_id": asset["id"]}), ("transfer", {"to": "+19495550123"}),
             ("record", {}), ("hangup", {})]
    for kind, form in forms:
        r = client.post(f"/console/calls/live/{call_id}/{kind}", data={"csrf": token, **form})
        assert r.status_code == 303, (kind, r.get_data(as_text=True)[-800:])
    sent = [fields for _, fields in redis.xrange("trunx:commands")]
    assert [f["action"] for f in sent] == [k for k, _ in forms]
    assert all(f["call"] == call_id for f in sent)
    assert '"digits": "12#"' in sent[0]["params"] and '"+19495550123"' in sent[3]["params"]
    bad = client.post(f"/console/calls/live/{call_id}/dtmf", data={"csrf": token,
                                                                   "digits": "12x"})
    assert bad.status_code == 422 and "digits must be" in bad.get_data(as_text=True)
