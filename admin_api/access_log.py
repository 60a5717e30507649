"""The access log's lines (`trunx.access`), written off the request threads when served.

A request thread only makes the record (`record`, without logging's caller lookup, which
walks the stack for a file and line no access-log format shows). Under gunicorn
(`defer()`, from admin_api/wsgi.py) it is queued and one thread per worker writes the
queued lines in batches through the root logger's handlers: their formatters and
filters as configured (text or JSON, trunx/logs.py), one write and one flush a batch. The
16 request threads of a worker otherwise queued on the handler's lock for every line
(py-spy under the GET /ivr/:id bench: a fifth of the worker's GIL time went to the access
log, half of it releasing that lock). Without defer() (tests, a single process) a record
is handled at once, as any log line.

`flush()` writes what is queued; the worker calls it when it exits (gunicorn's
worker_exit, and atexit), so no line of a served request is lost at a graceful stop.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time

logger = logging.getLogger("trunx.access")
BATCH = 512
PAUSE = 0.05     # seconds a written line may wait for the ones after it

_queue: queue.SimpleQueue | None = None
_pid = 0      # the process whose thread drains _queue (a fork has none: it starts its own)
_writing = threading.Lock()
_held: list = []     # the line the writer thread took and has not written yet (_run)


def record(message: str, args: tuple, fields: dict) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    rec = logger.makeRecord(logger.name, logging.INFO, "", 0, message, args, None,
                            extra=fields)
    if _queue is None:
        logger.handle(rec)
        return
    if _pid != os.getpid():     # forked after defer() (gunicorn --preload)
        defer()
    _queue.put(rec)


def defer() -> None:
    """From now on, records are written by a thread of this process."""
    global _queue, _pid
    if _queue is not None and _pid == os.getpid():
        return
    _queue, _pid = queue.SimpleQueue(), os.getpid()
    threading.Thread(target=_run, args=(_queue,), name="trunx-access-log",
                     daemon=True).start()
    atexit.register(flush)


def _run(q: queue.SimpleQueue) -> None:
    while True:
        first = q.get()
        with _writing:
            # where a flush sees it: a worker stopping during the pause below wrote every
            # line but this one, which the thread held when the process ended
            _held.append(first)
        # then let a batch gather: woken for every line, this thread took the GIL from
        # the request threads once a request (GET /ivr/:id, 16 threads: 2,000 req/s
        # against 2,900 with this pause, 3,100 with no access log at all)
        time.sleep(PAUSE)
        _drain(q, [])
        while not q.empty():
            _drain(q, [])


def flush() -> None:
    """Write whatever is queued now (the caller's thread)."""
    q = _queue
    if q is not None:
        _drain(q, [])


def _drain(q: queue.SimpleQueue, batch: list) -> None:
    with _writing:    # the writer thread and a flush at exit write in order, not at once
        if _held:     # taken from the queue before the rest: written first
            batch[:0] = _held
            _held.clear()
        while len(batch) < BATCH:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        if batch:
            _write(batch)


def _write(batch: list) -> None:
    records = [r for r in batch if logger.filter(r)]
    if logger.disabled or not records:
        return
    current = logger
    while current is not None:
        for handler in current.handlers:
            _emit(handler, records)
        current = current.parent if current.propagate else None


def _emit(handler: logging.Handler, records: list) -> None:
    passed = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
    if not passed:
        return
    if type(handler) is not logging.StreamHandler:    # files, sockets, ...: as they are
        for r in passed:
            handler.handle(r)
        return
    lines = []
    for r in passed:
        try:
            lines.append(handler.format(r) + handler.terminator)
        except Exception:
            handler.handleError(r)
    with handler.lock:
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except Exception:
            handler.handleError(passed[-1])
