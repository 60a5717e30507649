"""The admin API's gunicorn settings, one place for every way it is served:
`gunicorn -c python:admin_api.gunicorn_conf -b 127.0.0.1:8080 'admin_api.wsgi:app'`
(bench/api_bench.py serves both the API and its bare baseline with exactly these).

Threaded workers, because some requests wait seconds on something else (ElevenLabs,
Ultravox, SFTP staging, DELETE /api/voice waiting for the engine): a sync worker would
serve nothing meanwhile. 4 x 16 lets 64 requests be in flight at once. Workers are
stateless (the GET /ivr/:id memo checks the database on every read), so any count works.
Fewer threads a worker were measured against it (4 x 4, 8 x 4, 3 x 24, 2 x 32, 50
connections): no less CPU per GET beyond the noise, and more per POST /ivr (3.9 against
3.1 ms at 4 x 4), since a worker's group commit then takes fewer saves a turn.
"""
workers = 4
worker_class = "gthread"
threads = 16

# Prometheus metrics across workers (admin_api/observe.py): each worker writes its counters
# to files in this folder and a scrape of any worker sums them. Made fresh for each
# master unless the operator names one; a dead worker's live gauges are dropped.
import os as _os  # noqa: E402
import tempfile as _tempfile  # noqa: E402


def on_starting(server):
    # set here, in the master before it forks workers, not when this file is imported: a
    # process that only reads these settings must not switch its own metrics to files
    if not _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _tempfile.mkdtemp(prefix="trunx-api-metrics-")
    folder = _os.environ["PROMETHEUS_MULTIPROC_DIR"]
    _os.makedirs(folder, exist_ok=True)
    for name in _os.listdir(folder):     # counts of an earlier run are not this run's
        if name.endswith(".db"):
            _os.unlink(_os.path.join(folder, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    # the access log's queued lines (admin_api/access_log.py) before the worker is gone
    from admin_api import access_log

    access_log.flush()
