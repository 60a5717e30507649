"""gunicorn entry point: `gunicorn 'admin_api.wsgi:app'`; config from TRUNX_* / TRUNX_CONFIG."""
from admin_api import access_log, create_app
from trunx import config as trunx_config
from trunx import logs

_config = trunx_config.load()
logs.setup(_config.log_json)     # text, or JSON lines (log_json); trunx.access is the access log
access_log.defer()              # its lines written by a thread of the worker, in batches
app = create_app(_config)
