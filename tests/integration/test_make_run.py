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
