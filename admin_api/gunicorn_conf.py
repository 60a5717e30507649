"""The admin API's gunicorn settings, one place for every way it is served:
`gunicorn -c python:admin_api.gunicorn_conf -b 127.0.0.1:8080 'admin_api.wsgi:app'`
(bench/api_bench.py serves both the API and its bare baseline with exactly these).

Threaded workers, because some requests wait seconds on something else (ElevenLabs,
Ultravox, SFTP staging, DELETE /api/voice waiting for the engine): a sync worker would
serve nothing meanwhile. 4 x 16 lets 64 requests be in flight at once. Workers are
stateless (the GET /ivr/:id memo checks the database on every read), so any count works.
"""
workers = 4
worker_class = "gthread"
threads = 16
