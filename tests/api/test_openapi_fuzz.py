"""A bounded property-based fuzz run over the API's own /openapi.json, against the real
gunicorn API: for every operation that takes a JSON body, bodies generated from its
published schema (hypothesis-jsonschema) and arbitrary JSON are sent.

Two properties:
- no input is a server error (5xx, but for the 503s a host without a provider answers);
- no schema is looser than the API: a body the schema accepts is never refused for its
  shape. It may still be refused for what a schema cannot know (a DID this account does
  not hold, a node that does not exist, an address policy, a provider that is not set up):
  those codes are listed in NOT_SHAPE.
"""
from __future__ import annotations

import copy
import os
import uuid

import pytest
import requests
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from admin_api.validation import SchemaValidator
from tests.api.test_bad_input import DID, tree
from tests.api.test_seed_examples import api_server

# per operation and property: bounded, a few seconds each (FUZZ_EXAMPLES=200 for a
# deeper run by hand; the slow operations scale along)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
SCALE = EXAMPLES / 15
# TTS on every example, or IVR trees (slow to generate: nested maps under patterns)
SLOW = {op: round(n * SCALE) for op, n in {
    ("post", "/audio"): 6, ("post", "/ivr/{ivr_id}/audio"): 6, ("post", "/ivr"): 8,
    ("patch", "/ivr/{ivr_id}"): 8}.items()}
# no shrinking: each step is a request to the server; a failing example is shown as found
PHASES = (Phase.explicit, Phase.generate)
# Refusals of a schema-valid body that say something other than its shape.
NOT_SHAPE = {
    "unknown-did", "unknown-node", "unknown-ivr", "unknown-audio", "unknown-agent",
    "url-not-allowed",
    "unknown-voice", "invalid-voice", "invalid-provider", "number-suppressed",
    "invalid-transfer-target", "immutable", "unreachable", "requires-system-prompt",
    "conflict",
    # answering-machine detection: tuning fields and asyncAmd apply only with
    # machineDetection or a voicemailDrop, and a drop needs DetectMessageEnd (as
    # requires-system-prompt: a rule across fields the document states in words)
    "requires-machine-detection", "requires-detect-message-end",
    # {{name}} in a prompt must be a variable trunx supplies (docs/ai.md): content, not shape
    "unknown-template-variable",
    # text the TTS engine finds nothing to say in ("¦", private-use characters): content,
    # not shape (blank and too long are the schema's, and refused before the engine)
    "empty-audio", "invalid-text",
}
# statuses that are about the state of things, not the body
STATE_STATUSES = {200, 201, 202, 401, 403, 404, 409, 502, 503, 504}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("fuzz")) as server:
        key = server.account("Fuzz")
        headers = {"Authorization": f"Bearer {key}"}
        account = requests.get(server.base + "/api/account", headers=headers,
                               timeout=10).json()["id"]
        assert requests.post(server.base + "/api/dids", json={"number": DID},
                             headers=headers, timeout=10).status_code == 201
        assert requests.post(server.base + "/ivr", json={"id": "main", **tree()},
                             headers=headers, timeout=10).status_code == 201
        document = requests.get(server.base + "/openapi.json", timeout=10).json()
        params = {"ivr_id": "main", "number": DID, "auth_id": account,
                  "call_uuid": str(uuid.uuid4()), "agent_id": str(uuid.uuid4()),
                  "transfer_uuid": str(uuid.uuid4()), "call_id": str(uuid.uuid4())}
        yield server, headers, document, params


def _resolve(node, schemas):
    """The schema with every local $ref replaced by its target, and trunx's x- keys gone."""
    if isinstance(node, list):
        return [_resolve(n, schemas) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolve(copy.deepcopy(schemas[node["$ref"].rsplit("/", 1)[1]]), schemas)
    return {k: _resolve(v, schemas) for k, v in node.items()
            if not k.startswith("x-") and k not in ("examples", "description")}


def _operations() -> list[tuple[str, str]]:
    from admin_api.openapi import PATHS

    return sorted((method, path) for path, item in PATHS.items()
                  for method, op in item.items()
                  if "application/json" in op.get("requestBody", {}).get("content", {}))


def _send(server, headers, params, method, path, body):
    url = server.base + path.format(**params)
    return requests.request(method, url, json=body, headers=headers, timeout=60)


def _shape_problems(r) -> list:
    """The refusal's problems that are about the body's shape (empty: none)."""
    error = r.json()["error"]
    details = error["details"] if isinstance(error["details"], list) else []
    if error["code"] == "invalid-json":
        return [error]
    if r.status_code in (400, 422) and not details:
        return [] if error["code"] in NOT_SHAPE else [error]
    return [d for d in details if d.get("code") not in NOT_SHAPE]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_schema_valid_bodies_are_never_refused_for_their_shape(served, method, path):
    server, headers, document, params = served
    op = document["paths"][path][method]
    schemas = document["components"]["schemas"]
    body_schema = _resolve(op["requestBody"]["content"]["application/json"]["schema"],
                           schemas)
    ecma = SchemaValidator(body_schema)
    seen = []

    @settings(max_examples=SLOW.get((method, path), EXAMPLES), deadline=None, database=None,
              phases=PHASES, suppress_health_check=list(HealthCheck))
    @given(from_schema(body_schema))
    def check(body):
        assume(ecma.is_valid(body))     # JSON Schema's own (ECMA-262) reading of patterns
        r = _send(server, headers, params, method, path, body)
        seen.append(r.status_code)
        assert r.status_code < 500 or r.status_code in (502, 503, 504), r.text[:500]
        assert r.status_code in STATE_STATUSES or not _shape_problems(r), (
            f"{method.upper()} {path}: the schema accepts {body!r:.300} but the API "
            f"answered {r.status_code} {r.text[:400]}")

    check()
    assert seen, "no schema-valid body was generated"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


@pytest.mark.parametrize(("method", "path"), _operations())
def test_any_json_is_never_a_server_error(served, method, path):
    server, headers, document, params = served
    op = document["paths"][path][method]
    fields = sorted(_resolve(op["requestBody"]["content"]["application/json"]["schema"],
                             document["components"]["schemas"]).get("properties", {}))
    # arbitrary values under the operation's own field names reach past the unknown-field
    # check into each field's validation
    bodies = JSON | st.dictionaries(st.sampled_from(fields) if fields else st.text(), JSON,
                                    max_size=5)

    @settings(max_examples=SLOW.get((method, path), EXAMPLES), deadline=None, database=None,
              phases=PHASES, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body):
        r = _send(server, headers, params, method, path, body)
        assert r.status_code < 500 or r.status_code in (502, 503, 504), r.text[:500]
        assert r.headers["Content-Type"].startswith("application/json")

    check()
