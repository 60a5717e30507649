"""Fixtures for tests against real servers: a throwaway Redis, and Asterisk instances run
from the cached Debian root (DESIGN.md, "Real Asterisk").

- `redis_server`, `redis` (tests/conftest.py): a RedisServer on a free port, a clean client
- `asterisk_root`  session: the root's Path; skips when it was never built, except under CI
                   (env CI set), where a missing root is a failure
- `agi_port`       session: the free port our PBX sends FastAGI to; the engine (or a test's
                   own FastAGI server) listens there
- `carrier_sip_port` session: the SIP port the carrier will use, known before either starts
- `pbx`            session: our PBX (trunx/asterisk/conf/ + dialplan/), booted; in a
                   container where a Docker engine answers (devtools/stack/docker.py), else
                   from the root under chroot (what CI runs: it has no Docker engine)
- `carrier`        session: the test carrier (role "carrier") wired to `pbx`, booted on demand
- `pbx_ami`, `carrier_ami`  function: logged-in AmiClient as the least-privilege user
"""
from __future__ import annotations

import socket

import pytest

from devtools.stack import (
    Asterisk,
    ContainerAsterisk,
    RootMissing,
    backend,
    container_root,
    find_root,
    free_port,
)
from devtools.stack.ami import AmiClient
from tests.conftest import missing


@pytest.fixture(scope="session")
def asterisk_root():
    try:
        return find_root()
    except RootMissing as exc:
        missing(str(exc))


def pytest_collection_modifyitems(items):
    """Whatever needs the root (pbx, carrier, ...) is marked `asterisk`, so `-m "not asterisk"`
    selects exactly the tests that run without it."""
    for item in items:
        if "asterisk_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(autouse=True)
def _asterisk_marker(request):
    """A test marked `asterisk` skips (or fails under CI) like the root fixture does."""
    if request.node.get_closest_marker("asterisk"):
        request.getfixturevalue("asterisk_root")


@pytest.fixture(scope="session")
def agi_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def carrier_sip_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def _booted(instance: Asterisk):
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def _instance(root, *args, **kwargs) -> Asterisk:
    """The session's shared instances run where the stack's backend says."""
    if backend() == "docker":
        return ContainerAsterisk(container_root(), *args, **kwargs)
    return Asterisk(root, *args, **kwargs)


@pytest.fixture(scope="session")
def pbx(asterisk_root, agi_port, carrier_sip_port):
    yield from _booted(_instance(asterisk_root, "pbx", agi_port=agi_port,
                                 carrier_sip_port=carrier_sip_port))


@pytest.fixture(scope="session")
def carrier(asterisk_root, pbx, carrier_sip_port):
    yield from _booted(_instance(asterisk_root, "carrier", role="carrier",
                                 sip_port=carrier_sip_port, pbx_sip_port=pbx.sip_port))


async def _ami(instance: Asterisk):
    client = AmiClient(instance.ami_port, instance.watch_user, instance.ami_secret)
    await client.connect()
    try:
        yield client
        # The instance lives for the session: globals a test set (the carrier's STEPS_<n>
        # scripts) must not script the next test's calls.
        for name in sorted(client.globals_set):
            await client.action("Setvar", {"Variable": name, "Value": ""})
    finally:
        await client.close()


@pytest.fixture
async def pbx_ami(pbx):
    async for client in _ami(pbx):
        yield client


@pytest.fixture
async def carrier_ami(carrier):
    async for client in _ami(carrier):
        yield client
