"""Watching the API: `/healthz`, `/readyz`, Prometheus `/metrics`, and the access log.

    GET /healthz   200 {"status": "ok"} while the process serves requests
    GET /readyz    200 when the database and Redis both answer, else 503 naming which not
    GET /metrics   Prometheus text: requests, latency, TTS cache, Redis and database errors

No key is needed for these three (a load balancer or Prometheus asks them); they carry no
account data. Under gunicorn every worker is its own process, so the counters live in
prometheus-client's multiprocess mode: each process writes its values to files in
`PROMETHEUS_MULTIPROC_DIR` (admin_api/gunicorn_conf.py makes one and marks dead workers),
and a scrape of any worker sums them all. Without that variable (tests, a single process)
the app's own registry answers.

The access log is the `trunx.access` logger: one line per request with method, path,
status, duration and account (a JSON object with those fields when JSON logs are on,
trunx/logs.py), written by a thread of each worker when served (admin_api/access_log.py).
"""
from __future__ import annotations

import os
import time

from flask import Blueprint, current_app, g, has_app_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from admin_api import access_log
from admin_api import context as ctx

bp = Blueprint("observe", __name__)
PUBLIC = {"observe.healthz", "observe.readyz", "observe.metrics"}


class ApiMetrics:
    """The API's metrics, in a registry of their own (one per app)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("trunx_api_requests", "API requests answered",
                                ["method", "endpoint", "status"], registry=r)
        self.latency = Histogram("trunx_api_request_seconds", "API request duration",
                                 ["endpoint"], registry=r)
        self.tts_cache = Counter("trunx_tts_cache", "TTS renders asked for, by whether the "
                                 "content cache held them", ["result"], registry=r)
        self.dependency_errors = Counter(
            "trunx_dependency_errors", "Requests that failed on Redis or the database",
            ["dependency"], registry=r)

    def exposition(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app) -> None:
    metrics = app.extensions["trunx.metrics"] = ApiMetrics()
    # errors.py reports a failed dependency here (one hook, no import of this module)
    app.extensions["trunx.dependency_error"] = metrics.dependency_errors.labels

    @app.before_request
    def _start_clock():
        g.trunx_started = time.perf_counter()

    # the labelled children, looked up once per (method, endpoint, status)
    counted: dict[tuple, tuple] = {}

    @app.after_request
    def _account_for(response):
        started = g.pop("trunx_started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        req = request._get_current_object()    # one proxy lookup, not one per field
        method, endpoint, status = req.method, req.endpoint or "unmatched", response.status_code
        if endpoint != "observe.metrics":
            children = counted.get((method, endpoint, status))
            if children is None:
                children = counted[(method, endpoint, status)] = (
                    metrics.requests.labels(method, endpoint, str(status)),
                    metrics.latency.labels(endpoint))
            children[0].inc()
            children[1].observe(elapsed)
        path, took = req.path, elapsed * 1000
        access_log.record("%s %s %s %.1fms", (method, path, status, took), {
            "method": method, "path": path, "status": status,
            "duration_ms": round(took, 1), "account_id": getattr(g.get("account"), "id", None),
            "remote": req.remote_addr})
        return response


def tts_rendered(rendered) -> None:
    """Count a TTS render by whether the content cache answered it (trunx/media/pipeline)."""
    tts_counter()(rendered)


def tts_counter():
    """tts_rendered for use outside the request (a speak's later sentences render in a
    thread of their own): the app's metrics taken now."""
    metrics = current_app.extensions.get("trunx.metrics") if has_app_context() else None

    def count(rendered) -> None:
        if metrics is not None:
            metrics.tts_cache.labels("hit" if rendered.cached else "miss").inc()
    return count


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    checks = {"database": _check(_database_answers), "redis": _check(_redis_answers)}
    ready = all(v == "ok" for v in checks.values())
    return {"ready": ready, "checks": checks}, 200 if ready else 503


@bp.get("/metrics")
def metrics():
    body = current_app.extensions["trunx.metrics"].exposition()
    return current_app.response_class(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def _database_answers() -> None:
    ctx.store().db.execute_sql("SELECT 1").fetchone()


def _redis_answers() -> None:
    ctx.redis().ping()


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:    # whatever it is, the answer is "not ready" and why
        return f"failing: {type(exc).__name__}: {exc}"[:200]
