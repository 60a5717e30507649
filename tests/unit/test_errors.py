"""The one error tree (trunx/errors.py) and the API's one status table (admin_api/errors.py).

The codes and statuses are the contract clients branch on: CONTRACT pins every code the
code raises to the status clients have always seen for it. The source is read (ast) for
every place an error of the tree is made with a literal code, so a new code without a
status here, or a status that drifted, fails this test."""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from flask import Flask

import admin_api
import agi_server
import trunx
from admin_api import errors as api_errors
from admin_api.errors import STATUS_BY_CODE, STATUS_BY_KIND, status_for
from trunx import errors
from trunx.errors import TrunxError

ROOT = Path(__file__).resolve().parents[2]

# code -> the status clients see (the seed pages, tests/api and what trunx answered before)
CONTRACT = {
    # admin_api routes and services
    "invalid-request": 422, "invalid-json": 400, "unsupported-media-type": 415,
    "payload-too-large": 413, "unauthorized": 401, "forbidden": 403,
    "audio-not-found": 404, "audio-file-missing": 404, "audio-in-use": 409,
    "did-not-found": 404, "did-exists": 409, "ivr-not-found": 404, "ivr-exists": 409,
    "ivr-conflict": 409, "ivr-assigned": 409, "node-not-found": 404, "invalid-ivr": 422,
    "agent-not-found": 404, "call-not-found": 404, "suppression-not-found": 404,
    "action-not-found": 404, "recording-not-found": 404, "record-failed": 502,
    "call-not-in-progress": 409, "recording-in-progress": 409, "not-recording": 409,
    # IVR tools: a stored version asked for, Graphviz's dot drawing the SVG
    "version-not-found": 404, "graphviz-missing": 503, "graphviz-failed": 502,
    # Idempotency-Key (admin_api/idempotency.py)
    "idempotency-key-in-progress": 409, "idempotency-key-reused": 422,
    # attended transfers (complete/cancel) and bridged calls
    "transfer-not-found": 404, "call-bridged": 409, "not-attended": 409,
    "transfer-not-consulting": 409, "consult-not-answered": 409,
    "number-suppressed": 403, "ai-bridge-unavailable": 503,
    # quotas per account, and numbers the operator allocates
    "rate-limited": 429, "quota-exceeded": 429, "did-allocation-by-operator": 403,
    "operator-webhook-secret": 409,
    # Ultravox
    "ultravox-not-configured": 503, "ultravox-timeout": 504, "ultravox-unreachable": 503,
    "ultravox-bad-response": 502, "ultravox-unauthorized": 502, "ultravox-not-found": 502,
    "ultravox-rate-limited": 503, "ultravox-rejected": 422, "ultravox-error": 502,
    # Ultravox SIP settings trunx cannot use (trunx ultravox sip, the AI bridge)
    "bad-agent-id": 422, "bad-sip-domain": 422, "bad-sip-endpoint": 422, "bad-sip-mode": 422,
    "bad-token": 422,
    "bad-cidr": 422, "bad-sip-username": 422,
    # the media pipeline
    "empty-audio": 422, "transcode-failed": 422, "invalid-text": 400, "invalid-voice": 400,
    "unknown-voice": 400, "invalid-settings": 400, "invalid-provider": 400,
    "invalid-asset-id": 400, "invalid-url": 400, "url-not-allowed": 400,
    "url-unresolvable": 422,
    "provider-not-configured": 503, "tts-failed": 500, "tool-missing": 500,
    "tts-provider-error": 502, "tts-provider-timeout": 504, "tts-provider-unavailable": 503,
    "staging-failed": 502, "staging-host-key": 502, "fetch-failed": 502, "fetch-timeout": 504,
    # never an API answer today, but every error has a status should one ever be
    "account-not-found": 404, "invalid-number": 422, "ami-error": 502,
    "ami-unavailable": 503, "ami-disconnected": 503, "tree-unavailable": 503,
    "record-write-failed": 500,
}
# of no kind on purpose: ends a call (ai_result.endReason), never an API answer
NO_KIND = {"BridgeError", "BridgedError"}
# a family's root, to catch the family by; only its kinded subclasses are raised
FAMILY_ROOTS = {"MediaError", "UltravoxError"}


def _import_all() -> None:
    for package in (trunx, admin_api, agi_server):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            # wsgi builds an app from the environment; __main__ modules run
            if info.name != "admin_api.wsgi" and not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def _tree() -> dict[str, type]:
    _import_all()
    out, todo = {}, [TrunxError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            out[sub.__name__] = sub
            todo.append(sub)
    return out


def _takes_code(cls: type) -> bool:
    """Whether callers pass the code (else the class's own __init__ names it)."""
    params = list(inspect.signature(cls.__init__).parameters)
    return params[1:2] == ["code"]


def _raised(classes: dict[str, type]) -> set[tuple[str, str]]:
    """(class name, code) for every literal code an error of the tree is made with."""
    found = set()
    for path in [*ROOT.glob("trunx/**/*.py"), *ROOT.glob("admin_api/**/*.py"),
                 *ROOT.glob("agi_server/**/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in classes:
                for item in ast.walk(node):
                    if (isinstance(item, ast.Assign) and len(item.targets) == 1
                            and getattr(item.targets[0], "id", None) == "code"
                            and isinstance(item.value, ast.Constant)):
                        found.add((node.name, item.value.value))
                    if (isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute)
                            and item.func.attr == "__init__" and item.args
                            and isinstance(item.args[0], ast.Constant)):
                        found.add((node.name, item.args[0].value))
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            if name == "invalid":
                found.add(("InvalidInput", "invalid-request"))
            elif name in classes and _takes_code(classes[name]):
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add((name, first.value))
    return found


CLASSES = _tree()
RAISED = sorted((name, code) for name, code in _raised({**CLASSES, "TrunxError": TrunxError})
                if name not in NO_KIND)


def test_the_walk_finds_the_codes():
    codes = {code for _, code in RAISED}
    # a sample from each family, so a walk that silently finds nothing fails
    assert {"invalid-request", "ivr-assigned", "number-suppressed", "fetch-timeout",
            "ultravox-rate-limited", "ami-disconnected", "tree-unavailable"} <= codes


@pytest.mark.parametrize(("name", "code"), RAISED)
def test_every_raised_code_has_the_status_clients_know(name, code):
    assert code in CONTRACT, f"{name}({code!r}) has no status in the contract"
    cls = CLASSES.get(name, TrunxError)
    exc = cls.__new__(cls)
    exc.code = code
    assert status_for(exc) == CONTRACT[code], f"{name}({code!r})"


def test_the_contract_names_no_code_that_is_never_raised():
    assert set(CONTRACT) == {code for _, code in RAISED}


def test_every_error_has_a_kind():
    assert not FAMILY_ROOTS & {name for name, _ in RAISED}, "a family root raised directly"
    for name, cls in CLASSES.items():
        if name in NO_KIND | FAMILY_ROOTS:
            continue
        assert any(issubclass(cls, kind) for kind in errors.KINDS), f"{name} has no kind"


def test_every_kind_has_a_status_and_overrides_are_only_where_needed():
    assert set(errors.KINDS) <= set(STATUS_BY_KIND)
    for code, status in STATUS_BY_CODE.items():
        kinds = {CLASSES.get(n, TrunxError) for n, c in RAISED if c == code}
        assert kinds, f"override for {code!r}, which nothing raises"
        for cls in kinds:
            kind_status = next(STATUS_BY_KIND[c] for c in cls.__mro__ if c in STATUS_BY_KIND)
            assert kind_status != status, f"{code!r}: the override repeats its kind's status"


def test_the_nearest_kind_wins():
    assert status_for(errors.UpstreamTimeout("t", "slow")) == 504
    assert status_for(errors.UpstreamError("t", "broken")) == 502
    assert status_for(TrunxError("t", "no kind")) == 500


def test_errors_are_data_without_http():
    err = errors.invalid("to", "invalid-number", "to must be E.164")
    assert (err.code, err.message) == ("invalid-request", "to must be E.164")
    assert err.details == [{"field": "to", "code": "invalid-number",
                            "message": "to must be E.164"}]
    assert str(err) == "invalid-request: to must be E.164"
    for cls in (TrunxError, *errors.KINDS):
        assert not hasattr(cls("c", "m"), "status")


def test_a_hangup_is_not_an_error():
    from agi_server.agi.errors import AGIHangup

    assert not issubclass(AGIHangup, TrunxError)


def test_phone_errors_stay_value_errors():
    from trunx.phone import InvalidNumber, to_e164

    with pytest.raises(ValueError) as info:
        to_e164("nope")
    assert isinstance(info.value, InvalidNumber) and isinstance(info.value, errors.InvalidInput)


@pytest.fixture
def client():
    app = Flask(__name__)
    api_errors.init_app(app)

    @app.get("/raise/<kind>")
    def _raise(kind):
        raise {"forbidden": errors.Forbidden("number-suppressed", "on the list", {"n": 1}),
               "json": errors.InvalidInput("invalid-json", "not JSON"),
               "upstream": errors.UpstreamTimeout("fetch-timeout", "slow"),
               "bug": KeyError("x")}[kind]

    return app.test_client()


@pytest.mark.parametrize(("kind", "status", "body"), [
    ("forbidden", 403, {"code": "number-suppressed", "message": "on the list",
                        "details": {"n": 1}}),
    ("json", 400, {"code": "invalid-json", "message": "not JSON", "details": {}}),
    ("upstream", 504, {"code": "fetch-timeout", "message": "slow", "details": {}}),
    ("bug", 500, {"code": "internal-error", "message": "an unexpected error occurred",
                  "details": {}}),
])
def test_one_handler_renders_every_error(client, kind, status, body):
    r = client.get(f"/raise/{kind}")
    assert (r.status_code, r.json) == (status, {"error": body})


def test_routing_errors_keep_their_bodies(client):
    r = client.post("/raise/json")
    assert r.status_code == 405
    assert r.json["error"]["code"] == "method-not-allowed"
    assert r.json["error"]["details"] == {"allowed": ["GET", "HEAD", "OPTIONS"]}
