"""Fixtures every test folder shares: a throwaway redis-server and a clean client to it."""
from __future__ import annotations

import os
import shutil

import pytest
import redis as redis_lib

from devtools.stack import RedisServer
from tests import db_support


def missing(reason: str) -> None:
    """Skip on a developer machine; fail under CI, where every part must be installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing part is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _database_cluster():
    """With TRUNX_TEST_DB=postgresql: the cluster the tests' databases live on, stopped at
    the end (tests/db_support.py starts it when a test first asks)."""
    yield
    db_support.end_session()


@pytest.fixture(autouse=True)
def _test_database():
    yield
    db_support.end_test()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis(redis_server):
    """A client to the session's Redis, emptied first."""
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()
