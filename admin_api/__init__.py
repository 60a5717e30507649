"""The admin API (Flask): validates, stores, publishes; never talks to a live channel.

`create_app(config=None, *, redis=None)` builds one app per process (gunicorn worker or
test). Its parts come in, or are made here from the config, and hang off the app:
`app.config["TRUNX"]` is the trunx Config, `app.extensions["trunx.redis"]` the Redis client.
One blueprint per seed page (audio, ivr, voice, agents, call actions) plus trunx's own
additions (dids, suppressions, account).
"""
from __future__ import annotations

from flask import Flask

from trunx import config as trunx_config
from trunx import db as trunx_db

# multipart framing around an upload: the file itself is held to upload_max_bytes exactly
_FORM_OVERHEAD = 64 * 1024


def create_app(config=None, *, redis=None) -> Flask:
    import redis as redis_lib

    from admin_api import (
        account,
        agents,
        audio,
        auth,
        call_actions,
        dids,
        errors,
        ivr,
        openapi,
        suppressions,
        voice,
    )

    config = config or trunx_config.load()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        TRUNX=config,
        MAX_CONTENT_LENGTH=config.upload_max_bytes + _FORM_OVERHEAD,
    )
    app.json.sort_keys = False
    app.extensions["trunx.redis"] = (
        redis if redis is not None
        else redis_lib.Redis.from_url(config.redis_url, decode_responses=True))

    database = trunx_db.connect(config)
    database.close()   # each request opens its own; a forked worker must not share one

    @app.before_request
    def _open_db():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close_db(exc):
        if not database.is_closed():
            database.close()

    errors.init_app(app)
    auth.init_app(app)
    for module in (audio, ivr, dids, agents, voice, call_actions, suppressions, account,
                   openapi):
        app.register_blueprint(module.bp)
    return app
