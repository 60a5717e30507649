"""Bearer-key authentication for every route, as the seed pages show it:
`Authorization: Bearer tk_live_...`. Unmatched routes skip it so that an unknown path or
method answers 404/405 (a key is no secret about which routes exist: they are documented)."""
from __future__ import annotations

from flask import g, request

from admin_api import rate_limit
from trunx import accounts
from trunx.errors import Unauthorized

# endpoints anyone may read: the API's own description, health and metrics
PUBLIC_ENDPOINTS = {"openapi.document", "observe.healthz", "observe.readyz", "observe.metrics"}
# blueprints that sign in their own way: the console's cookie (admin_api/console/base.py)
OWN_SIGN_IN = {"console"}


def _bearer(req=request) -> str | None:
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def init_app(app) -> None:
    keys = accounts.KeyCache(app.extensions["trunx.store"].db)
    app.extensions["trunx.keys"] = keys
    limiter = rate_limit.RateLimiter(app.extensions["trunx.store"].redis)

    @app.before_request
    def _authenticate():
        req = request._get_current_object()    # one proxy lookup, not one per field
        if req.url_rule is None or req.endpoint in PUBLIC_ENDPOINTS \
                or req.blueprint in OWN_SIGN_IN:
            return
        token = _bearer(req)
        account = keys.authenticate(token) if token else None
        if account is None:
            raise Unauthorized("unauthorized",
                               "missing or invalid API key; send Authorization: Bearer <key>"
                               if token is None else "the API key is not valid")
        g.account = account
        limiter.check(account.id, app.config["TRUNX"].api_rate_limit)
