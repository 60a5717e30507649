"""The access log's writer thread (admin_api/access_log.py): a line it has taken from the
queue and not yet written is still written by a flush (a worker stopping mid-pause)."""
from __future__ import annotations

import logging
import queue
import threading

from admin_api import access_log
from devtools.stack import wait_until


class _Kept(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_flush_writes_the_line_the_writer_thread_holds(monkeypatch):
    kept = _Kept()
    access_log.logger.addHandler(kept)
    monkeypatch.setattr(access_log.logger, "level", logging.INFO)
    monkeypatch.setattr(access_log, "PAUSE", 30.0)    # the thread holds its line meanwhile
    q: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=access_log._run, args=(q,), daemon=True).start()
    try:
        rec = access_log.logger.makeRecord(access_log.logger.name, logging.INFO, "", 0,
                                           "GET /held %s", (200,), None)
        q.put(rec)
        wait_until(lambda: q.empty() and access_log._held, message="the line taken")
        assert kept.lines == []
        access_log._drain(q, [])          # what flush() does at a worker's exit
        assert kept.lines == ["GET /held 200"]
        assert access_log._held == []
    finally:
        access_log.logger.removeHandler(kept)
