"""Signing in and out of the console, and its error page."""
from __future__ import annotations

from flask import current_app, redirect, request, url_for

from admin_api.console.base import COOKIE, MAX_KEY, bp, render
from admin_api.errors import status_for
from trunx.errors import TrunxError, Unauthorized

SESSION_SECONDS = 12 * 3600


def _safe_next(value: str | None) -> str:
    # only a console path: a `next` pointing anywhere else would make this an open redirect
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return url_for("console.ivrs")


@bp.get("/login")
def login():
    return render("login.html", next=_safe_next(request.args.get("next")))


@bp.post("/login")
def login_post():
    key = request.form.get("key", "").strip()
    account = (current_app.extensions["trunx.keys"].authenticate(key)
               if 0 < len(key) <= MAX_KEY else None)
    if account is None:
        return render("login.html", next=_safe_next(request.form.get("next")),
                      error=Unauthorized("unauthorized", "That API key is not valid.")), 401
    response = redirect(_safe_next(request.form.get("next")), code=303)
    response.set_cookie(COOKIE, key, max_age=SESSION_SECONDS, path="/console",
                        httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.post("/logout")
def logout():
    response = redirect(url_for("console.login"), code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="Strict",
                           secure=request.is_secure)
    return response


@bp.get("/")
def home():
    return redirect(url_for("console.ivrs"))


@bp.errorhandler(TrunxError)
def _error(exc: TrunxError):
    return render("error.html", error=exc), status_for(exc)
