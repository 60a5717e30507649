"""Every class of bad input at the edge, against trunx served by a real gunicorn (its
shipped settings, a real Redis, a SQLite file): each case is refused with its status, its
error code and the field it names, and leaves nothing behind (rows, files and Redis keys
are compared before and after each request).

The classes (issue: "every input at the edge"): identifiers and numbers that only match
up to a trailing newline or in another script's digits; CR, LF and NUL in stored strings;
audio references that are paths; URLs that do not parse or point inside the operator's
network; JSON nested deeper than a parser's stack, NaN, oversized bodies (refused before
they are read), wrong content types; odd query values.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis as redis_lib
import requests

from tests import db_support
from tests.api.test_seed_examples import api_server

DID = "+19495551234"
NODE = {"audio": "vm-goodbye", "gather": {"1": "bye"}}
BYE = {"action": "hangup", "audio": "vm-goodbye"}


def tree(**welcome) -> dict:
    return {"nodes": {"welcome": {**NODE, **welcome}, "bye": BYE}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("edges")) as server:
        key = server.account("Acme Dental")
        headers = {"Authorization": f"Bearer {key}"}
        ok = requests.post(server.base + "/api/dids", json={"number": DID}, headers=headers,
                           timeout=10)
        assert ok.status_code == 201, ok.text
        ok = requests.post(server.base + "/ivr", json={"id": "main", **tree()},
                           headers=headers, timeout=10)
        assert ok.status_code == 201, ok.text
        yield server, headers


def state(server) -> dict:
    """Rows per table, files under the data folder (the database's own aside), Redis keys."""
    rows = db_support.row_counts(server.env["TRUNX_DATABASE_URL"],
                                 server.data_dir / "trunx.db")
    files = set()
    for dirpath, _, names in os.walk(server.data_dir):
        files.update(str(Path(dirpath, n)) for n in names if not n.startswith("trunx.db"))
    client = redis_lib.Redis.from_url(server.env["TRUNX_REDIS_URL"])
    try:
        # per-second request counters (admin_api/quotas.py) expire by themselves
        keys = sorted(k for k in client.keys("*") if not k.startswith(b"trunx:rate:"))
    finally:
        client.close()
    return {"rows": rows, "files": files, "redis": keys}


LOOPBACK_HOOK = "http://127.0.0.1:9/hooks"
AI = {"from": DID, "to": "+14155550100", "systemPrompt": "hi"}

# (id, method, path, json body, status, error code, the field details name or None)
CASES = [
    # identifiers and numbers: whole strings, ASCII digits
    ("did-newline", "POST", "/api/dids", {"number": DID[:-1] + "5\n"}, 422,
     "invalid-request", "number"),
    ("did-other-digits", "POST", "/api/dids", {"number": "+1949555١٢٣٥"}, 422,
     "invalid-request", "number"),
    ("did-fullwidth-digits", "POST", "/api/dids", {"number": "+１９４９５５５１２３５"}, 422,
     "invalid-request", "number"),
    ("did-label-crlf", "POST", "/api/dids", {"number": "+19495551235", "label": "a\r\nb"},
     422, "invalid-request", "label"),
    ("did-label-nul", "POST", "/api/dids", {"number": "+19495551235", "label": "a\x00"},
     422, "invalid-request", "label"),
    ("suppression-newline", "POST", "/api/suppressions", {"number": "+14155550100\n"}, 422,
     "invalid-request", "number"),
    ("suppression-reason-lf", "POST", "/api/suppressions",
     {"number": "+14155550100", "reason": "x\ny"}, 422, "invalid-request", "reason"),
    ("ivr-id-newline", "POST", "/ivr", {"id": "sales\n", **tree()}, 422, "invalid-request",
     "id"),
    ("ivr-node-newline", "POST", "/ivr",
     {"id": "n1", "nodes": {"welcome\n": NODE, "bye": BYE}}, 422, "invalid-ivr",
     "nodes.welcome\n"),
    ("ivr-gather-key-newline", "POST", "/ivr",
     {"id": "n2", **tree(gather={"1\n": "bye"})}, 422, "invalid-ivr",
     "nodes.welcome.gather.1\n"),
    ("ivr-transfer-newline", "POST", "/ivr",
     {"id": "n3", "nodes": {"welcome": {**NODE, "gather": {"1": "t"}},
                            "t": {"action": "transfer", "to": "+14155550100\n"}}},
     422, "invalid-ivr", "nodes.t.to"),
    ("ivr-transfer-other-digits", "POST", "/ivr",
     {"id": "n4", "nodes": {"welcome": {**NODE, "gather": {"1": "t"}},
                            "t": {"action": "transfer", "to": "+1415555٠١٠٠"}}},
     422, "invalid-ivr", "nodes.t.to"),
    ("ivr-audio-newline", "POST", "/ivr", {"id": "n5", **tree(audio="welcome.wav\n")}, 422,
     "invalid-ivr", "nodes.welcome.audio"),
    ("ivr-audio-nul", "POST", "/ivr", {"id": "n6", **tree(audio="welcome\x00")}, 422,
     "invalid-ivr", "nodes.welcome.audio"),
    ("ivr-audio-absolute-path", "POST", "/ivr", {"id": "n7", **tree(audio="/etc/passwd")},
     422, "invalid-ivr", "nodes.welcome.audio"),
    ("ivr-audio-staged-path", "POST", "/ivr",
     {"id": "n8", **tree(audio="sounds/aud_0123456789abcdef")}, 422, "invalid-ivr",
     "nodes.welcome.audio"),
    ("ivr-audio-dotdot", "POST", "/ivr", {"id": "n9", **tree(audio="digits/../../x")}, 422,
     "invalid-ivr", "nodes.welcome.audio"),
    ("ivr-invalid-audio-path", "POST", "/ivr",
     {"id": "n10", **tree(invalid_audio="/var/spool/x")}, 422, "invalid-ivr",
     "nodes.welcome.invalid_audio"),
    ("assign-newline", "POST", "/ivr/main/assign", {"did": DID + "\n"}, 422,
     "invalid-request", "did"),
    ("tts-name-nul", "POST", "/audio", {"name": "greet\x00ing", "text": "hello"}, 422,
     "invalid-request", "name"),
    ("tts-name-crlf", "POST", "/audio", {"name": "greet\r\nX-Injected: 1", "text": "hi"},
     422, "invalid-request", "name"),
    ("tts-text-nul", "POST", "/audio", {"name": "greeting", "text": "hel\x00lo"}, 422,
     "invalid-request", "text"),
    # URLs: malformed, or into the operator's network (refused by default)
    ("account-url-unparsable", "PATCH", "/api/account", {"webhookUrl": "http://[::1"}, 422,
     "invalid-request", "webhookUrl"),
    ("account-url-bad-port", "PATCH", "/api/account",
     {"webhookUrl": "http://example.com:99999/"}, 422, "invalid-request", "webhookUrl"),
    ("account-url-loopback", "PATCH", "/api/account", {"webhookUrl": LOOPBACK_HOOK}, 422,
     "invalid-request", "webhookUrl"),
    ("account-url-metadata-service", "PATCH", "/api/account",
     {"webhookUrl": "http://169.254.169.254/latest/meta-data"}, 422, "invalid-request",
     "webhookUrl"),
    ("account-url-private", "PATCH", "/api/account", {"webhookUrl": "http://10.1.2.3/h"},
     422, "invalid-request", "webhookUrl"),
    ("account-url-localhost-name", "PATCH", "/api/account",
     {"webhookUrl": "http://localhost:8080/h"}, 422, "invalid-request", "webhookUrl"),
    ("account-url-zero", "PATCH", "/api/account", {"webhookUrl": "http://0.0.0.0/"}, 422,
     "invalid-request", "webhookUrl"),
    ("call-webhook-unparsable", "POST", "/api/voice",
     {"from": DID, "to": "+14155550100", "webhookUrl": "http://[::1"}, 422,
     "invalid-request", "webhookUrl"),
    ("call-webhook-loopback", "POST", "/api/voice",
     {"from": DID, "to": "+14155550100", "webhookUrl": LOOPBACK_HOOK}, 422,
     "invalid-request", "webhookUrl"),
    ("call-to-newline", "POST", "/api/voice", {"from": DID, "to": "+14155550100\n"}, 422,
     "invalid-request", "to"),
    ("call-from-newline", "POST", "/api/voice", {"from": DID + "\n", "to": "+14155550100"},
     422, "invalid-request", "from"),
    ("call-duration-newline", "POST", "/api/voice",
     {"from": DID, "to": "+14155550100", "maxDuration": "300s\n\n1"}, 422,
     "invalid-request", "maxDuration"),
    ("tool-url-unparsable", "POST", "/api/voice",
     {**AI, "tools": [{"modelToolName": "lookup", "description": "d",
                       "http": {"baseUrlPattern": "http://[::1", "httpMethod": "GET"}}]},
     422, "invalid-request", "tools[0].http.baseUrlPattern"),
    ("tool-url-loopback", "POST", "/api/voice",
     {**AI, "tools": [{"modelToolName": "lookup", "description": "d",
                       "http": {"baseUrlPattern": "http://127.0.0.1/x", "httpMethod": "GET"}}]},
     422, "invalid-request", "tools[0].http.baseUrlPattern"),
    ("tool-name-newline", "POST", "/api/voice",
     {**AI, "tools": [{"modelToolName": "lookup\n", "description": "d"}]},
     422, "invalid-request", "tools[0].modelToolName"),
    # JSON that is not what a JSON route takes
    ("json-nan", "POST", "/api/dids", '{"number": NaN}', 400, "invalid-json", None),
    ("json-infinity", "POST", "/api/voice", '{"from": "x", "maxDuration": Infinity}', 400,
     "invalid-json", None),
    ("json-deep-100000", "POST", "/api/dids", "[" * 100_000 + "]" * 100_000, 400,
     "invalid-json", None),
    ("json-deep-object", "POST", "/ivr",
     '{"id": "deep", "nodes": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}", 400,
     "invalid-json", None),
    ("json-float-overflow", "POST", "/api/voice",
     '{"from": "+19495551234", "to": "+14155550100", "maxDuration": 1e400}', 400,
     "invalid-json", None),
    ("json-huge-integer", "POST", "/api/voice",
     '{"from": "+19495551234", "to": "+14155550100", "maxDuration": ' + "9" * 5000 + "}",
     400, "invalid-json", None),
    ("json-not-object", "POST", "/api/suppressions", "[1, 2]", 400, "invalid-json", None),
    ("json-bad-utf8", "POST", "/api/dids", b'{"number": "\xff"}', 400, "invalid-json", None),
    ("json-lone-surrogate", "POST", "/api/dids",
     '{"number": "+19495551235", "label": "\\ud800x"}', 400, "invalid-json", None),
    ("json-lone-surrogate-key", "POST", "/api/voice",
     '{"from": "+19495551234", "to": "+14155550100", "metadata": {"\\udc00": "x"}}', 400,
     "invalid-json", None),
    # odd query values
    ("query-superscript", "GET", "/api/voice/agents?limit=²", None, 422, "invalid-request",
     "limit"),
    ("query-arabic-digits", "GET", "/api/voice/agents?limit=٥", None, 422,
     "invalid-request", "limit"),
    ("query-huge", "GET", "/api/voice/agents?limit=" + "9" * 400, None, 422,
     "invalid-request", "limit"),
    # path values that are not ids
    ("path-did-newline", "DELETE", "/api/dids/%2B19495551234%0A", None, 404,
     "did-not-found", None),
    ("path-ivr-nul", "GET", "/ivr/main%00", None, 404, "ivr-not-found", None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "field"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_stores_nothing(served, method, path, body, status, code,
                                                 field):
    server, headers = served
    before = state(server)
    if isinstance(body, (str, bytes)):
        r = requests.request(method, server.base + path, data=body, timeout=30,
                             headers={**headers, "Content-Type": "application/json"})
    else:
        r = requests.request(method, server.base + path, json=body, headers=headers,
                             timeout=30)
    assert r.status_code == status, r.text[:500]
    error = r.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error
    assert state(server) == before


def test_wrong_content_type_is_415(served):
    server, headers = served
    before = state(server)
    r = requests.post(server.base + "/api/dids", data=json.dumps({"number": "+19495551236"}),
                      headers={**headers, "Content-Type": "text/plain"}, timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported-media-type")
    assert state(server) == before


def test_upload_name_with_crlf_is_refused(served):
    server, headers = served
    before = state(server)
    r = requests.post(server.base + "/audio/upload", headers=headers, timeout=10,
                      files={"file": ("a.wav", b"RIFF....WAVE")},
                      data={"name": "hello\r\nworld"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "name"
    assert state(server) == before


def _raw_request(base: str, head: str, body: bytes = b"") -> bytes:
    """Send `head` (and `body`) on a socket of our own; what the server answers, read until
    it closes or goes quiet."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        except TimeoutError:
            pass
    return answer


def test_oversized_json_is_refused_before_it_is_read(served):
    """A JSON route refuses a 20 MB body by its Content-Length alone: the answer comes
    before a single byte of the body was sent."""
    server, headers = served
    before = state(server)
    answer = _raw_request(server.base, (
        "POST /api/dids HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {headers['Authorization']}\r\n"
        f"Content-Length: {20 * 1024 * 1024}\r\nConnection: close\r\n\r\n"))
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "payload-too-large"
    assert body["error"]["details"] == {"max_bytes": 1024 * 1024}
    assert state(server) == before


def test_json_over_the_limit_sent_whole_is_413(served):
    server, headers = served
    before = state(server)
    big = json.dumps({"number": "+19495551237", "label": "x" * (1024 * 1024)})
    r = requests.post(server.base + "/api/dids", data=big, timeout=30,
                      headers={**headers, "Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload-too-large")
    assert state(server) == before
