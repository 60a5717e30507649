"""The call-record writer: a child process the engine starts and owns (record_sink.py).

    python -m agi_server.calls.record_writer FD

FD is this process's end of a socketpair the engine made. Every message either way is a
frame (`frame`: a 4-byte big-endian length, then a pickle; both ends are trunx, started
by the engine, so pickle carries the config and rows as they are). First the engine sends
`(config, log_level)`; the writer opens the database from that config (SQLite or
PostgreSQL, trunx.db) and answers `(0, None)`: ready. Then each `(seq, rows)` is one
batch of Call rows (dicts, encoded here: agi_server.calls.record), written with `save_rows`
in one transaction and answered `(seq, None)` once COMMITTED, or `(seq, "error text")`
after the rollback, so the engine's per-row retry works as with the database thread.

Why a process: the SQL, the JSON of the visit rows and the commits cost the engine's
process most of its CPU per call, and a database thread in that process also handed the
GIL to and from the event loop's thread at every SQLite call (docs/benchmarks.md).

It exits when the engine's end closes (a stop, or the engine died), after the batch in
hand. SIGINT and SIGTERM are ignored: a Ctrl-C or a service manager's stop reaches the
whole process group, and the engine still has rows to hand over while it stops.
"""
from __future__ import annotations

import gc
import logging
import pickle
import signal
import socket
import struct
import sys

HEADER = struct.Struct(">I")

log = logging.getLogger("agi_server.calls.record_writer")


def frame(message) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def _read(stream):
    """The next message, or None at the end of the stream (the engine closed its end)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def serve(sock: socket.socket) -> int:
    from agi_server.calls.record import save_rows
    from trunx import db as trunx_db
    from trunx import logs

    stream = sock.makefile("rb")
    hello = _read(stream)
    if hello is None:
        return 0
    config, level = hello
    logs.setup(config.log_json, level)
    database = trunx_db.connect(config)
    # what lives now lives as long as the process: out of the collector's walks (as the
    # engine's settle_heap does)
    gc.collect()
    gc.freeze()
    sock.sendall(frame((0, None)))
    while (message := _read(stream)) is not None:
        seq, rows = message
        try:
            save_rows(database, rows)
            reply = (seq, None)
        except Exception as exc:     # reported to the engine, which retries row by row
            log.warning("batch of %d call rows not written: %s", len(rows), exc)
            reply = (seq, f"{type(exc).__name__}: {exc}")
        sock.sendall(frame(reply))
    trunx_db.close_all(database)
    return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    try:
        return serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        return 0          # the engine is gone: nobody is left to tell
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
