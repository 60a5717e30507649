"""`make run`'s program, as a newcomer runs it: everything up, a demo call, its path."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devtools.stack import free_port

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def test_make_run_places_the_demo_call_and_prints_its_path(tmp_path):
    env = {**os.environ, "TRUNX_DATA_DIR": str(tmp_path), "TRUNX_AGI_PORT": str(free_port()),
           "TRUNX_API_PORT": str(free_port())}
    env.pop("TRUNX_REDIS_URL", None)
    for _ in range(2):     # a second run reuses the database and the staged prompts
        out = subprocess.run([sys.executable, "-m", "devtools.run", "--once"], env=env,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "outcome hangup" in text
    for node in ("welcome", "has_business", "unqualified"):
        assert f"  {node} " in text
    assert "digits=1" in text and "digits=2" in text
    assert "Authorization: Bearer tk_live_" in text
    # the second run published a second version of the same tree
    assert "IVR qualify-business v2" in text


def test_make_run_sandbox_numbers_end_as_documented(tmp_path):
    """README's "Try it": with `make run` up, one outbound call to each sandbox number over
    the API ends as devtools.run.SANDBOX (and the README) says."""
    import re
    import signal
    import threading

    import requests

    from devtools.run import SANDBOX
    from devtools.stack import wait_until

    env = {**os.environ, "TRUNX_DATA_DIR": str(tmp_path), "TRUNX_AGI_PORT": str(free_port()),
           "TRUNX_API_PORT": str(free_port()),
           # the never-answering number rings this long (45 s by default)
           "TRUNX_ORIGINATE_TIMEOUT": "6"}
    env.pop("TRUNX_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: proc.poll() is not None or any("running; Ctrl-C" in x for x in lines),
                   timeout=150, message="make run up")
        text = "".join(lines)
        assert proc.poll() is None, text
        key, base = re.search(r"Bearer (tk_live_\S+)' (http://127.0.0.1:\d+)/ivr", text).groups()
        for number, what in SANDBOX:
            assert f"  {number}  {what}" in text
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"
        ids = {}
        for number, _ in SANDBOX:
            reply = api.post(f"{base}/api/voice", json={"from": "+19495551234", "to": number},
                             timeout=10)
            assert reply.status_code == 201, reply.text
            ids[number] = reply.json()["id"]
        ended = {}

        def all_ended() -> bool:
            for number, call_id in ids.items():
                call = api.get(f"{base}/api/voice/{call_id}", timeout=10).json()
                if call["status"] in ("completed", "failed"):
                    ended[number] = call
            return len(ended) == len(ids)

        wait_until(all_ended, timeout=60, interval=0.5, message="every sandbox call ended")
        outcome = {n: (c["status"], c["endReason"]) for n, c in ended.items()}
        assert outcome == {"+12025550160": ("completed", "callee-hangup"),
                           "+12025550110": ("failed", "busy"),
                           "+12025550120": ("failed", "no-answer"),
                           "+12025550170": ("completed", "callee-hangup")}
        # "Hello world" is about a second; the greeting and beep about 5, then 10 s of listening
        assert 1 <= ended["+12025550160"]["duration"] < 6
        assert ended["+12025550170"]["duration"] >= 14
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        proc.stdout.close()
