"""gunicorn entry point: `gunicorn 'admin_api.wsgi:app'`; config from TRUNX_* / TRUNX_CONFIG."""
from admin_api import create_app

app = create_app()
