"""Fixtures for the admin API tests, Flask-tutorial shape: `app`, `client`, plus a real
redis-server on a free loopback port, a SQLite file in tmp_path and accounts with keys.

Nothing is mocked: TTS is espeak-ng (or the fake ElevenLabs server, which speaks HTTP),
transcoding is sox, staging writes real files (or goes over a real sshd).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_lib

from admin_api import create_app
from trunx import accounts, db
from trunx import config as trunx_config

TOOLS = ("redis-server", "espeak-ng", "sox")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server with no persistence: a restart loses everything, like a crash would."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            client = redis_lib.Redis(port=self.port, socket_timeout=1)
            try:
                if client.ping():
                    return self
            except redis_lib.ConnectionError:
                time.sleep(0.05)
            finally:
                client.close()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session", autouse=True)
def _tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the API tests need: {', '.join(missing)}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    client = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config(tmp_path, redis_server):
    # env={}: a developer's ELEVENLABS_API_KEY or TRUNX_* must not leak into the tests
    return trunx_config.load(env={}, data_dir=str(tmp_path / "data"),
                             redis_url=redis_server.url)


@pytest.fixture
def make_app(redis):
    apps = []

    def make(config):
        app = create_app(config, redis=redis)
        app.testing = True
        apps.append(app)
        return app

    yield make
    if not db.proxy.is_closed():
        db.proxy.close()


@pytest.fixture
def app(make_app, config):
    return make_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class Tenant:
    id: str
    key: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}


def _tenant(name: str) -> Tenant:
    account = accounts.create_account(name)
    return Tenant(account.id, accounts.create_key(account))


@pytest.fixture
def tenant(app) -> Tenant:
    return _tenant("Acme Dental")


@pytest.fixture
def other(app) -> Tenant:
    return _tenant("Someone Else")


SEED_TREE = {
    "id": "qualify-business",
    "nodes": {
        "welcome": {
            "audio": "welcome.wav",
            "gather": {"1": "has_business", "9": "dnc"},
            "timeout_node": "welcome",
        },
        "has_business": {
            "audio": "business_check.wav",
            "gather": {"1": "transfer_ai", "2": "unqualified"},
        },
        "transfer_ai": {"action": "transfer"},
        "unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
        "dnc": {"action": "suppress"},
    },
}


def make_audio(path: Path, text: str = "After hours greeting", kind: str = "mp3") -> Path:
    """A real audio file of `kind`, spoken by espeak-ng and converted by sox."""
    wav = path.with_suffix(".src.wav")
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), str(path)], check=True, capture_output=True)
    wav.unlink()
    return path


def files_under(*roots) -> set[str]:
    out = set()
    for root in roots:
        for dirpath, _, names in os.walk(root):
            out.update(os.path.join(dirpath, n) for n in names)
    return out


def state(config, redis) -> dict:
    """Everything a request could leave behind: rows, files, Redis keys."""
    from trunx.models import ALL_MODELS

    data = Path(config.data_dir)
    return {
        "rows": {m.__name__: m.select().count() for m in ALL_MODELS},
        "files": {f for f in files_under(data, config.staged_sounds_dir)
                  if not Path(f).name.startswith("trunx.db")},
        "redis": sorted(redis.keys("*")),
    }
