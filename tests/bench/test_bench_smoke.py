"""The benchmark machinery itself, on one tiny round: trunx's engine and the panoramisk
baseline each in their own process, driven by the load generator in a third. Every call
must walk the expected path, so a misrouting engine fails here. No timing is asserted."""
from __future__ import annotations

import shutil
import time

import pytest

from bench import agi_bench
from devtools.stack import RedisServer

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


@pytest.fixture
def sides(tmp_path):
    with RedisServer(tmp_path / "redis") as rs:
        started = []
        try:
            started.append(agi_bench._start_engine(str(tmp_path), rs.url, "smoke"))
            started.append(agi_bench._start_baseline(str(tmp_path), "smoke"))
            started.append(agi_bench._start_baseline(str(tmp_path), "smoke", kind="floor"))
            yield started
        finally:
            for side in started:
                side.child.close()


def test_both_servers_send_the_expected_sequence(sides):
    for side in sides:
        assert agi_bench.check_sequence(side.port) == agi_bench.EXPECT, side.name


def test_one_round_at_c1_completes_every_call_on_the_path(sides):
    for side in sides:
        result = side.rate(1, duration=0.5, warmup=0.2)
        assert result["sessions"] > 0, side.name
        assert result["ok"] == result["sessions"], (side.name, result["wrong_examples"])
        assert result["errors"] == {}, side.name
        # every command but a call's first is timed
        assert result["overhead"]["samples"] == (len(agi_bench.EXPECT) - 1) * result["sessions"]
    engine = sides[0].child.ask("stats")
    assert engine["server"].get("errors", 0) == 0
    # records are group-committed a little after their calls end
    deadline = time.monotonic() + 5
    while engine["records_saved"] != engine["server"]["calls"] and time.monotonic() < deadline:
        time.sleep(0.05)
        engine = sides[0].child.ask("stats")
    assert engine["records_saved"] == engine["server"]["calls"]


def test_holding_calls_open_loses_none(sides):
    for side in sides:
        result = agi_bench.hold(side, sessions=20, delay=0.02, ramp=0.1)
        assert (result["ok"], result["lost"]) == (20, 0), (side.name, result)
        assert result["server_peak_sessions"] >= 1
