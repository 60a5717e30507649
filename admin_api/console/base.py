"""The console's blueprint and what every page shares: signing in with an API key kept in
an HttpOnly cookie, protection against cross-site form posts, and rendering.

The cookie holds the API key itself (the key is the account's credential; nothing else is
stored server-side), `HttpOnly` so page scripts never see it, `SameSite=Strict` and scoped
to /console, `Secure` when the request came over HTTPS. Every request re-checks it through
the app's key cache, so a revoked key signs the console out on its next page.

Forms carry a token that only a page rendered for the signed-in key can know: an HMAC of a
fixed label keyed by the API key (a cross-site page can neither read the cookie nor the
token); a POST without it, or whose Origin is another site, is refused with 403 before the
handler runs.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")
COOKIE = "trunx_console"
MAX_KEY = 200            # longer than any key trunx makes; anything longer is not one
OPEN_ENDPOINTS = {"console.login", "console.login_post", "console.static"}


def csrf_token(key: str) -> str:
    return hmac.new(key.encode(), b"trunx-console-form", hashlib.sha256).hexdigest()


def _same_origin() -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True      # (browsers send Origin on cross-site POSTs; SameSite covers others)
    # the host only, not the scheme: behind a proxy that ends TLS, the app sees http
    return urlsplit(origin).netloc == request.host


@bp.before_request
def _sign_in():
    if request.method == "POST" and not _same_origin():
        abort(403)
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    key = request.cookies.get(COOKIE, "")
    account = (current_app.extensions["trunx.keys"].authenticate(key)
               if 0 < len(key) <= MAX_KEY else None)
    if account is None:
        return redirect(url_for("console.login", next=request.path))
    g.account, g.console_key = account, key
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        if not hmac.compare_digest(sent, csrf_token(key)):
            abort(403)
    return None


@bp.after_request
def _headers(response):
    # the pages are the account's own data: not cached, not framed, no inline script
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "media-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return response


def render(template: str, **values):
    key = getattr(g, "console_key", None)
    return render_template(template, csrf=csrf_token(key) if key else "",
                           account=getattr(g, "account", None), **values)
