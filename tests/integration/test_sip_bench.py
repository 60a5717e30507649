"""The real-SIP bench (bench/sip_bench.py) with a few callers: SIPp on the trunk of the
shipped configuration presses 1 then 2 as RFC 4733 events, every call walks the expected
path and is hung up by the IVR, and the key press -> next prompt time is measured from
packets captured at the caller. `make bench` runs the 1,000-caller version."""
from __future__ import annotations

import pytest

from bench import sip_bench

pytestmark = [pytest.mark.asterisk, pytest.mark.slow,
              pytest.mark.skipif(sip_bench.available() is not None,
                                 reason=sip_bench.available() or "")]


@pytest.mark.timeout(180)
def test_sipp_callers_press_1_then_2_and_walk_the_expected_path(asterisk_root):
    r = sip_bench.run(calls=4, rate=2, sample=1, log=lambda *_: None)
    assert r["sipp_returncode"] == 0, r["sipp_tail"]
    assert (r["sipp_ok"], r["sipp_failed"]) == (4, 0)
    assert (r["records"], r["expected_path"]) == (4, 4), r["wrong"]
    assert r["engine_errors"] == 0
    # every call's two presses were seen ending, and audio reached the caller after each
    assert r["presses_sampled"] == 8 and r["presses_measured"] == 8
    assert r["key_to_prompt_p50_ms"] is not None and r["key_to_prompt_p50_ms"] > 0
    assert r["asterisk_cpu_ms_per_call"] > 0 and r["engine_cpu_ms_per_call"] > 0
