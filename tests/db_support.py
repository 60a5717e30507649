"""Which database the tests run on: SQLite (a file in the test's tmp_path, the default) or,
with TRUNX_TEST_DB=postgresql, a fresh PostgreSQL database per test on a throw-away
cluster (devtools/stack/postgres.py) started at the first test that asks and stopped at
the end of the session (tests/conftest.py).

The test config builders (tests/api/conftest.py `config`, tests/engine_support.py
`make_config`) take `database_url()`: "" on SQLite, else the test's own database, made on
first use by copying a template the migrations ran on once (a copy takes ~0.1 s, running
the migrations ~1 s). A thread makes the copies ahead of the tests that take them and
drops the used ones, so a test waits for neither (0.2-1 s a test on a loaded machine)."""
from __future__ import annotations

import itertools
import os
import queue
import threading

ENV = "TRUNX_TEST_DB"
TEMPLATE = "trunx_template"


def backend() -> str:
    value = os.environ.get(ENV, "sqlite") or "sqlite"
    if value not in ("sqlite", "postgresql"):
        raise ValueError(f"{ENV} must be sqlite or postgresql, not {value!r}")
    return value


AHEAD = 2   # databases copied ahead of the tests


class _Cluster:
    server = None
    current: str | None = None   # this test's database name
    extra: list[str] = []        # more databases this test made
    names = itertools.count(1)
    ready: queue.Queue = queue.Queue()   # (name or None, error or None), made ahead
    chores: queue.Queue = queue.Queue()  # ("create", None) | ("drop", name) | ("stop", None)
    worker: threading.Thread | None = None


def _work() -> None:
    """The copier: runs the chores in order, handing each copy (or its error) to `ready`."""
    while True:
        chore, name = _Cluster.chores.get()
        if chore == "stop":
            return
        if chore == "drop":
            try:
                _Cluster.server.drop_database(name)
            except Exception:   # left for the cluster's removal at the end
                pass
            continue
        name = f"t{os.getpid()}_{next(_Cluster.names)}"
        try:
            _Cluster.server.create_database(name, template=TEMPLATE)
            _Cluster.ready.put((name, None))
        except Exception as exc:   # handed to the test that waits for this copy
            _Cluster.ready.put((None, exc))


def _start():
    from devtools.stack.postgres import PostgresServer
    from trunx import config as trunx_config
    from trunx import db, models

    server = PostgresServer().start()
    try:
        url = server.create_database(TEMPLATE)
        db.close_all(db.connect(trunx_config.load(env={}, database_url=url)))
        # (a template takes no sessions while it is copied)
        models.proxy.initialize(None)
    except BaseException:
        server.stop()
        raise
    _Cluster.server = server
    _Cluster.worker = threading.Thread(target=_work, name="test-databases", daemon=True)
    _Cluster.worker.start()
    for _ in range(AHEAD):
        _Cluster.chores.put(("create", None))


def database_url() -> str:
    if backend() == "sqlite":
        return ""
    if _Cluster.server is None:
        _start()
    if _Cluster.current is None:
        name, error = _Cluster.ready.get(timeout=120)
        _Cluster.chores.put(("create", None))   # the next test's
        if error is not None:
            raise error
        _Cluster.current = name
    return _Cluster.server.url(_Cluster.current)


def lasting_database_url() -> str:
    """For a fixture wider than one test (a module's gunicorn): "" on SQLite (its data_dir
    holds the file), else a copy of the template kept until the cluster stops."""
    if backend() == "sqlite":
        return ""
    if _Cluster.server is None:
        _start()
    name = f"m{os.getpid()}_{next(_Cluster.names)}"
    return _Cluster.server.create_database(name, template=TEMPLATE)


def empty_database_url(tmp_path) -> str:
    """A database no migration has run on: a new SQLite file, or on PostgreSQL a new
    database (dropped with the test's own)."""
    if backend() == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    database_url()   # the cluster, and this test's name to derive from
    name = f"{_Cluster.current}_empty"
    _Cluster.extra.append(name)
    return _Cluster.server.create_database(name)


def end_test() -> None:
    """Drop the test's database (its sessions ended), if it made one."""
    name, _Cluster.current = _Cluster.current, None
    if name is None:
        return
    from trunx import db, models

    names, _Cluster.extra = [name, *_Cluster.extra], []
    bound = models.proxy.obj
    if bound is not None and getattr(bound, "trunx_url", "").rsplit("/", 1)[-1] in names:
        db.close_all(bound)
        models.proxy.initialize(None)
    for each in names:
        _Cluster.chores.put(("drop", each))


def end_session() -> None:
    if _Cluster.server is not None:
        _Cluster.chores.put(("stop", None))
        _Cluster.worker.join(60)
        _Cluster.server.stop()
        _Cluster.server = None


def row_counts(database_url: str, sqlite_path) -> dict[str, int]:
    """Rows per table, read from outside the app: from `database_url` if set (PostgreSQL),
    else from the SQLite file at `sqlite_path`, read-only."""
    if database_url:
        import psycopg

        with psycopg.connect(database_url) as conn:
            tables = [t for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
            return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                    for t in tables}
    import sqlite3

    with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
