"""Which database the tests run on: SQLite (a file in the test's tmp_path, the default) or,
with TRUNX_TEST_DB=postgresql, PostgreSQL on a throw-away cluster (devtools/stack/postgres.py)
started at the first test that asks and stopped at the end of the session
(tests/conftest.py).

The test config builders (tests/api/conftest.py `config`, tests/engine_support.py
`make_config`) take `database_url()`: "" on SQLite, else the tests' database, migrated
once and emptied after each test that used it: its sessions ended (a pool left by the test
holds nothing over), every table truncated, any table the test made dropped. Emptying
takes ~0.04 s; copying a fresh database from a template per test took ~0.2 s of copying
7.5 MB, and twice the whole run's time on the 2-core machine."""
from __future__ import annotations

import itertools
import os

ENV = "TRUNX_TEST_DB"
SHARED = "trunx_test"
TEMPLATE = "trunx_template"


def backend() -> str:
    value = os.environ.get(ENV, "sqlite") or "sqlite"
    if value not in ("sqlite", "postgresql"):
        raise ValueError(f"{ENV} must be sqlite or postgresql, not {value!r}")
    return value


class _Cluster:
    server = None
    used = False                 # the current test took the shared database
    tables: tuple[str, ...] = ()  # the migrated schema's tables
    extra: list[str] = []        # more databases the current test made
    names = itertools.count(1)


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
        server.create_database(SHARED, template=TEMPLATE)
        _Cluster.tables = tuple(_tables(server.url(SHARED)))
    except BaseException:
        server.stop()
        raise
    _Cluster.server = server


def _tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]


def database_url() -> str:
    if backend() == "sqlite":
        return ""
    if _Cluster.server is None:
        _start()
    _Cluster.used = True
    return _Cluster.server.url(SHARED)


def lasting_database_url() -> str:
    """For a fixture wider than one test (a module's gunicorn): "" on SQLite (its data_dir
    holds the file), else a copy of the template kept until the cluster stops."""
    if backend() == "sqlite":
        return ""
    if _Cluster.server is None:
        _start()
    name = f"m{os.getpid()}_{next(_Cluster.names)}"
    return _Cluster.server.create_database(name, template=TEMPLATE)


def postgres_database_url() -> str:
    """A PostgreSQL database kept until the cluster stops, whatever TRUNX_TEST_DB says: for
    the tests whose point is PostgreSQL (tests/integration/test_cluster_must_show.py)."""
    if _Cluster.server is None:
        _start()
    name = f"p{os.getpid()}_{next(_Cluster.names)}"
    return _Cluster.server.create_database(name, template=TEMPLATE)


def empty_database_url(tmp_path) -> str:
    """A database no migration has run on: a new SQLite file, or on PostgreSQL a new
    database (dropped when the test ends)."""
    if backend() == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    if _Cluster.server is None:
        _start()
    name = f"e{os.getpid()}_{next(_Cluster.names)}"
    _Cluster.extra.append(name)
    return _Cluster.server.create_database(name)


def end_test() -> None:
    """Give the next test an empty database: this test's sessions ended, its rows gone."""
    if not _Cluster.used and not _Cluster.extra:
        return
    import psycopg

    from trunx import db, migrations, models

    bound = models.proxy.obj
    if bound is not None and getattr(bound, "trunx_url", "").startswith(
            _Cluster.server.url("")):
        db.close_all(bound)
        models.proxy.initialize(None)
    for name in _Cluster.extra:
        _Cluster.server.drop_database(name)
    _Cluster.extra = []
    if not _Cluster.used:
        return
    _Cluster.used = False
    with psycopg.connect(_Cluster.server.url(SHARED), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (SHARED,))
        for table in set(_tables(_Cluster.server.url(SHARED))) - set(_Cluster.tables):
            conn.execute(f'DROP TABLE "{table}" CASCADE')
        data = [t for t in _Cluster.tables if t != "schema_migration"]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in data)
                     + " RESTART IDENTITY CASCADE")
        conn.execute("DELETE FROM schema_migration WHERE version > %s", (migrations.HEAD,))


def end_session() -> None:
    if _Cluster.server is not None:
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
