"""The admin API (Flask): validates, stores, publishes; never talks to a live channel.

`create_app(config=None, *, redis=None)` builds one app per process (gunicorn worker or
test). Its parts come in, or are made here from the config, and hang off the app:
`app.config["TRUNX"]` is the trunx Config, `app.extensions["trunx.store"]` the Store
(trunx/store.py: the database, the writer lock and the Redis client) that route code hands
to the services (admin_api.context.store()).
One blueprint per seed page (audio, ivr, voice, agents, call actions) plus trunx's own
additions (dids, suppressions, account).
"""
from __future__ import annotations

import types

from flask import Flask

from trunx import config as trunx_config
from trunx import db as trunx_db
from trunx.store import Store

# multipart framing around an upload: the file itself is held to upload_max_bytes exactly
_FORM_OVERHEAD = 64 * 1024


class _Flask(Flask):
    """Flask asks `inspect` whether each hook and the view are coroutine functions on every
    request (~4 us each, seven a GET); a function's answer never changes, so it is kept."""

    def ensure_sync(self, func):
        if type(func) is not types.FunctionType:
            return super().ensure_sync(func)
        cache = self.__dict__.setdefault("_trunx_sync", {})
        found = cache.get(func)
        if found is None:
            found = cache[func] = super().ensure_sync(func)
        return found


def create_app(config=None, *, redis=None) -> Flask:
    from admin_api import (
        account,
        agents,
        audio,
        auth,
        call_actions,
        console,
        dids,
        errors,
        ivr,
        ivr_tools,
        observe,
        openapi,
        suppressions,
        voice,
    )

    config = config or trunx_config.load()
    app = _Flask(__name__, static_folder=None)
    app.config.update(
        TRUNX=config,
        MAX_CONTENT_LENGTH=config.upload_max_bytes + _FORM_OVERHEAD,
    )
    app.json.sort_keys = False
    store = app.extensions["trunx.store"] = Store.open(config, redis=redis)
    database = store.db
    # a worker forked after this (gunicorn --preload) must not share it: closed, not
    # handed back to PostgreSQL's pool, where a forked worker would find it
    trunx_db.close_unpooled(database)

    # One connection per worker thread (peewee keeps them thread-local), opened by the
    # thread's first request and kept: opening one costs its pragmas, and closing the last
    # connection to a WAL database checkpoints it, which together were ~a quarter of a
    # GET's time. Autocommit reads see every commit, so a kept connection reads fresh data.
    @app.before_request
    def _open_db():
        if database.is_closed():   # (connect() itself takes a lock every worker shares)
            database.connect(reuse_if_open=True)

    @app.url_value_preprocessor
    def _no_nul_in_ids(endpoint, values):
        # PostgreSQL's text cannot hold NUL (a query with one fails), and no stored id
        # holds one (writes refuse it): such a path value is looked up as one that cannot
        # match either, so the route answers its own not-found
        for name, value in (values or {}).items():
            if isinstance(value, str) and "\x00" in value:
                values[name] = value.replace("\x00", "\ufffd")

    @app.teardown_request
    def _end_transaction(exc):
        # a handler that died inside a transaction must not leave the next request in it
        if not database.is_closed() and database.in_transaction():
            database.rollback()

    errors.init_app(app)
    auth.init_app(app)
    observe.init_app(app)       # health, metrics and the access log (docs/observability.md)
    for module in (audio, ivr, ivr_tools, dids, agents, voice, call_actions, suppressions,
                   account, openapi, console, observe):
        app.register_blueprint(module.bp)
    return app
