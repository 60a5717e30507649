"""Fixtures for the admin API tests, Flask-tutorial shape: `app`, `client`, plus a real
redis-server on a free loopback port, a SQLite file in tmp_path and accounts with keys.

Nothing is mocked: TTS is espeak-ng (or the fake ElevenLabs server, which speaks HTTP),
transcoding is sox, staging writes real files (or goes over a real sshd).
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from admin_api import create_app
from devtools import demo
from tests import db_support
from trunx import accounts
from trunx import config as trunx_config

TOOLS = ("redis-server", "espeak-ng", "sox")


@pytest.fixture(scope="session", autouse=True)
def _tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the API tests need: {', '.join(missing)}")


@pytest.fixture
def config(tmp_path, redis_server):
    # env={}: a developer's ELEVENLABS_API_KEY or TRUNX_* must not leak into the tests
    return trunx_config.load(env={}, data_dir=str(tmp_path / "data"),
                             redis_url=redis_server.url, database_url=db_support.database_url())


@pytest.fixture
def make_app(redis):
    apps = []

    def make(config):
        app = create_app(config, redis=redis)
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["trunx.store"].close()


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


SEED_TREE = {"id": "qualify-business", **copy.deepcopy(demo.SEED_TREE)}


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
        # the per-second request counters (admin_api/quotas.py) are bookkeeping that
        # expires by itself, not something a request stored
        "redis": sorted(k for k in redis.keys("*") if not k.startswith("trunx:rate:")),
    }
