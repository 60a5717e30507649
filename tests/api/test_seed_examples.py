"""Every request example of the two seed pages (curl, Python requests, and JavaScript fetch
under node), run unchanged but for the host and key against trunx served by a real gunicorn
with its shipped settings (admin_api/gunicorn_conf.py), a real Redis and a SQLite file (or
PostgreSQL database: tests/db_support.py)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devtools.stack import RedisServer, free_port
from tests import db_support
from tests.api import seed_snippets as seed
from tests.api.conftest import make_audio

REPO = Path(__file__).resolve().parents[2]
KINDS = ["curl", "python", "fetch"]
DID = "+19495551234"


@dataclass
class Server:
    base: str
    env: dict
    data_dir: Path

    def account(self, name: str) -> str:
        out = subprocess.run([sys.executable, "-m", "trunx", "accounts", "create", name],
                             env=self.env, capture_output=True, text=True, check=True)
        return dict(line.split(" ", 1) for line in out.stdout.splitlines())["key"]


@contextlib.contextmanager
def api_server(root: Path, *, drop: tuple = (), engine: bool = False, **extra_env):
    """A Redis, then trunx's API under gunicorn with its shipped settings (and with
    `engine`, the engine too, `python -m agi_server`), all stopped on the way out. The
    environment is ours without TRUNX_* and API keys (`drop` names more), plus
    `extra_env`."""
    redis = RedisServer(root / "redis").start()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRUNX_") and k not in ("ELEVENLABS_API_KEY", *drop)}
    env.update(TRUNX_DATA_DIR=str(root / "data"), TRUNX_REDIS_URL=redis.url,
               TRUNX_DATABASE_URL=db_support.lasting_database_url(), **extra_env)
    port = free_port()
    procs = []
    try:
        with open(root / "gunicorn.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf",
                 "--bind", f"127.0.0.1:{port}", "--no-control-socket", "admin_api.wsgi:app"],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
        if engine:
            with open(root / "engine.log", "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "agi_server"], env=env, cwd=REPO, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        _wait_up(procs[0], base, root / "gunicorn.log")
        yield Server(base, env, root / "data")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)
        redis.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("gunicorn")) as served:
        yield served


def _wait_up(proc, base, log_path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-3000:]}")
        try:
            # the socket listens before the workers have imported the app: be patient
            if requests.get(base + "/openapi.json", timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not come up")


def adapt(snippet: str, server: Server, key: str, **ids) -> str:
    out = snippet.replace("https://api.trunx.io", server.base).replace("tk_live_...", key)
    for example, real in ids.items():
        out = out.replace(example, real)
    return out


def run(kind: str, snippet: str, cwd: Path) -> tuple[int | None, object]:
    """(status, parsed JSON body) of one example; (None, None) if it reads no response."""
    if kind == "curl":
        out = subprocess.run(["bash", "-c", snippet.rstrip() + ' -sS -w "\\n%{http_code}"'],
                             cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        body, _, status = out.stdout.rpartition("\n")
        return int(status), json.loads(body)
    if kind == "python":
        namespace: dict = {}
        here = os.getcwd()
        os.chdir(cwd)                      # the upload example opens "greeting.mp3"
        try:
            exec(compile(snippet, "<seed example>", "exec"), namespace)  # noqa: S102 - the seed's own example
        finally:
            os.chdir(here)
        if "res" not in namespace:
            return None, None
        return namespace["res"].status_code, namespace.get("data")
    script = cwd / "example.mjs"
    script.write_text(
        'import fs from "node:fs";\n'
        # the upload example appends an `audioFile` it leaves the reader to provide
        'const audioFile = new Blob([fs.readFileSync("greeting.mp3")], {type: "audio/mpeg"});\n'
        + snippet +
        '\nif (typeof res !== "undefined")'
        ' console.log(JSON.stringify({status: res.status, data}));\n')
    out = subprocess.run(["node", str(script)], cwd=cwd, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    if not out.stdout.strip():
        return None, None
    result = json.loads(out.stdout)
    return result["status"], result["data"]


@pytest.fixture
def workdir(tmp_path):
    make_audio(tmp_path / "greeting.mp3", "We are closed. Please call back tomorrow.")
    return tmp_path


@pytest.fixture(params=KINDS)
def kind(request):
    if request.param in ("curl", "fetch") and not shutil.which(request.param.replace(
            "fetch", "node")):
        pytest.skip(f"{request.param} is not installed")
    return request.param


def wav_seconds(server: Server, key: str, url: str) -> float:
    r = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return w.getnframes() / w.getframerate()


def test_ivr_page(server, kind, workdir):
    key = server.account(f"ivr-{kind}")
    h = {"Authorization": f"Bearer {key}"}
    suffix = "PY" if kind == "python" else kind.upper()
    snippets = {name: adapt(getattr(seed, f"IVR_{name}_{suffix}"), server, key)
                for name in ("CREATE", "AUDIO", "ASSIGN")}
    # trunx's addition: the DID must be declared before an IVR can be assigned to it
    assert requests.post(f"{server.base}/api/dids", json={"number": DID}, headers=h,
                         timeout=10).status_code == 201

    status, ivr = run(kind, snippets["CREATE"], workdir)
    assert status == 201
    assert ivr["id"] == "qualify-business" and ivr["version"] == 1
    assert list(ivr["nodes"]) == ["welcome", "has_business", "transfer_ai", "unqualified", "dnc"]
    # the page's tree names prompts that do not exist yet and a transfer with no target
    assert sorted({w["code"] for w in ivr["warnings"]}) == ["audio-not-found",
                                                             "no-transfer-target"]

    status, out = run(kind, snippets["AUDIO"], workdir)
    assert status == 201, out
    asset = out["audio"]
    assert out["nodes"]["welcome"]["audio"] == asset["id"] and out["version"] == 2
    assert (server.data_dir / "sounds" / f"{asset['id']}.wav").is_file()
    assert abs(wav_seconds(server, key, asset["url"]) - asset["durationSeconds"]) < 0.1

    status, out = run(kind, snippets["ASSIGN"], workdir)
    assert status in (200, None)   # the page's python and fetch examples ignore the answer
    got = requests.get(f"{server.base}/ivr/qualify-business", headers=h, timeout=10).json()
    assert got["dids"] == [DID] and got["version"] == 2
    listed = requests.get(f"{server.base}/ivr", headers=h, timeout=10).json()
    assert [i["id"] for i in listed["ivrs"]] == ["qualify-business"]
    r = requests.delete(f"{server.base}/ivr/qualify-business", headers=h, timeout=10)
    assert r.status_code == 409 and r.json()["error"]["details"] == {"dids": [DID]}
    # free the number for the next client's run, then the IVR can go
    assert requests.delete(f"{server.base}/api/dids/%2B19495551234", headers=h,
                           timeout=10).json() == {"deleted": True, "number": DID}
    assert requests.delete(f"{server.base}/ivr/qualify-business", headers=h,
                           timeout=10).status_code == 200


def test_audio_page(server, kind, workdir):
    key = server.account(f"audio-{kind}")
    suffix = "PY" if kind == "python" else kind.upper()

    status, tts = run(kind, adapt(getattr(seed, f"AUDIO_TTS_{suffix}"), server, key), workdir)
    assert status == 201
    assert {"id", "name", "url", "durationSeconds"} <= set(tts)
    assert tts["name"] == "Welcome Greeting"
    assert tts["url"] == f"{server.base}/audio/{tts['id']}/file"
    assert abs(wav_seconds(server, key, tts["url"]) - tts["durationSeconds"]) < 0.1

    status, up = run(kind, adapt(getattr(seed, f"AUDIO_UPLOAD_{suffix}"), server, key),
                     workdir)
    assert status == 201, up
    assert set(up) == {"id", "name", "url", "durationSeconds"}
    assert up["name"] == "After Hours Greeting"
    assert abs(wav_seconds(server, key, up["url"]) - up["durationSeconds"]) < 0.1

    status, listed = run(kind, adapt(getattr(seed, f"AUDIO_LIST_{suffix}"), server, key),
                         workdir)
    assert status == 200
    assert [a["id"] for a in listed["audio"]] == [tts["id"], up["id"]]

    status, out = run(kind, adapt(getattr(seed, f"AUDIO_DELETE_{suffix}"), server, key,
                                  aud_abc123=tts["id"]), workdir)
    assert status == 200 and out == {"deleted": True}
    assert not (server.data_dir / "sounds" / f"{tts['id']}.wav").exists()
    status, listed = run(kind, adapt(getattr(seed, f"AUDIO_LIST_{suffix}"), server, key),
                         workdir)
    assert [a["id"] for a in listed["audio"]] == [up["id"]]


def test_oversize_upload_through_gunicorn(server):
    """The 413 reaches a real client as JSON, though the body is refused unread."""
    key = server.account("big")
    too_big = 20 * 1024 * 1024 + 100 * 1024      # the default limit plus the form allowance
    r = requests.post(f"{server.base}/audio/upload", headers={"Authorization": f"Bearer {key}"},
                      files={"file": ("big.wav", b"RIFF" + b"\0" * too_big)}, timeout=60)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload-too-large"
