"""The Store: what the services share, made once per process and handed to them.

    store.db      the peewee database (`store.db.atomic()` for a transaction)
    store.redis   the sync Redis client (decode_responses=True)
    store.writer  the writer lock IVR and DID-map writes queue on (WriterLock, below)

`create_app` (admin_api) and the engine's wiring (agi_server/__main__.py) each build one
with `Store.open(config)`; tests build one per test on a temporary database. Nothing in
trunx reaches for a module-global database or lock: a service that needs them takes the
store as its first argument. The models themselves stay bound through peewee's
DatabaseProxy (trunx.models.proxy), which `trunx.db.connect` binds.
"""
from __future__ import annotations

import fcntl
import os
import threading

import peewee

from trunx import db as trunx_db
from trunx import redis_client


class Store:
    def __init__(self, database: peewee.Database, redis=None,
                 writer: WriterLock | None = None):
        self.db = database
        self.redis = redis
        self.writer = writer if writer is not None else WriterLock(database)

    @classmethod
    def open(cls, config, *, redis=None) -> Store:
        """Connect the configured database (binding the models to it) and, unless a client
        is given, a Redis client for `config.redis_url`."""
        database = trunx_db.connect(config)
        if redis is None:
            redis = redis_client.sync_client(config.redis_url)
        return cls(database, redis)

    def with_redis(self, redis) -> Store:
        """The same database and writer lock, another Redis client (the engine's database
        thread has its own; tests put a gated client in between)."""
        return Store(self.db, redis, self.writer)

    def close(self) -> None:
        """Close this thread's database connection and the writer lock's file."""
        self.writer.close()
        if not self.db.is_closed():
            self.db.close()


# pg_advisory_lock's key for the writer lock ("trunx-wr" as eight bytes)
WRITER_LOCK_KEY = int.from_bytes(b"trunx-wr", "big") & 0x7FFF_FFFF_FFFF_FFFF


class WriterLock:
    """Serialises one kind of write transaction among every thread and process writing
    the database, held across the commit and what follows it (publishing to Redis), so
    the order of commits is the order of publishes.

    SQLite: a waiter blocks in the kernel (flock on `<database>-writers.lock`) and wakes
    the moment the holder is done, where a waiter on SQLite's own lock sleeps in its busy
    handler (1, 2, 5, ... up to 100 ms at a time) and oversleeps most commits. Writers that
    don't take it (the engine) still meet SQLite's lock and busy_timeout, so it changes who
    waits how, never what is stored. Two WriterLocks on one file exclude each other too
    (flock is per open file), so a process may hold more than one store on a database.

    PostgreSQL: a session advisory lock (pg_advisory_lock) on the thread's connection, so
    it holds across processes and hosts. Session, not transaction (pg_advisory_xact_lock):
    the holder publishes after its commit, still holding it. A process that dies holding
    it loses its session and the lock with it."""

    def __init__(self, database: peewee.Database):
        self._database = database
        self._threads = threading.Lock()   # flock does not exclude threads sharing one fd
        self._pg = isinstance(database, peewee.PostgresqlDatabase)
        path = getattr(database, "database", None)
        if not isinstance(database, peewee.SqliteDatabase) or path in (None, ":memory:"):
            path = None
        self._path = path
        # (pid, fd): a child forked after this was made (gunicorn --preload) opens its own
        self._fd: tuple[int, int] | None = None

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(f"{self._path}-writers.lock",
                                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        return self._fd[1]

    def __enter__(self):
        self._threads.acquire()
        try:
            if self._pg:
                self._database.execute_sql("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
            else:
                fd = self._file()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self._pg:
                self._pg_unlock()
            elif self._fd is not None and self._fd[0] == os.getpid():
                fcntl.flock(self._fd[1], fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _pg_unlock(self) -> None:
        db, unlock = self._database, "SELECT pg_advisory_unlock(%s)"
        try:
            db.execute_sql(unlock, (WRITER_LOCK_KEY,))
            return
        except peewee.DatabaseError:
            pass
        try:   # an aborted transaction refuses every statement until it is rolled back
            db.rollback()
            db.execute_sql(unlock, (WRITER_LOCK_KEY,))
        except peewee.DatabaseError:
            # the session is gone or unusable: close it for good (not back to the pool,
            # where the next user would inherit the lock); the server frees its locks
            if not db.is_closed():
                db.manual_close()

    def close(self) -> None:
        """Close the lock file (not while held); the next `with` opens it again."""
        if self._fd is not None and self._fd[0] == os.getpid():
            os.close(self._fd[1])
        self._fd = None
