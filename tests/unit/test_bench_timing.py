"""The bench's per-command split inside the engine (bench.engine_proc.timing_summary): what
docs/benchmarks.md says a slow command was made of comes from here, so the arithmetic is
pinned on made-up clock readings (no real timing is measured or asserted)."""
from __future__ import annotations

from array import array

from bench.engine_proc import FIELDS, timing_summary


def _samples(rows):
    out = {f: array("d") for f in FIELDS}
    for row in rows:
        for name, value in zip(FIELDS, row, strict=True):
            out[name].append(value)
    return out


def test_the_split_adds_up_and_the_slowest_command_is_the_tail():
    # read, resumed, written, cpu, db_cpu, command number, time in the send
    rows = [(t, t + 0.0001, t + 0.0003, 0.0, 0.0, 2, 0.00005) for t in range(99)]
    rows.append((200.0, 200.004, 200.0045, 0.0, 0.0, 3, 0.0001))   # waited 4 ms for the loop
    s = timing_summary(_samples(rows), [])
    assert s["samples"] == 100
    assert round(s["p50_ms"], 6) == 0.3 and round(s["max_ms"], 6) == 4.5
    assert round(s["queue_p50_ms"], 6) == 0.1 and round(s["own_p50_ms"], 6) == 0.2
    assert round(s["send_p50_ms"], 6) == 0.05 and round(s["to_send_p50_ms"], 6) == 0.25
    assert s["tail"]["samples"] == 1
    assert round(s["tail"]["queue_ms"], 6) == 4.0 and round(s["tail"]["own_ms"], 6) == 0.5
    assert "off_cpu_ms" not in s["tail"]          # the CPU clocks were not read


def test_a_collection_is_counted_against_the_commands_it_overlapped():
    rows = [(t, t + 0.0001, t + 0.0003, 0.0001, 0.0, 2, 0.0) for t in range(99)]
    rows.append((500.0, 500.0001, 500.02, 0.001, 0.0005, 4, 0.0))   # 20 ms, 19 off the CPU
    gc_events = [(True, 0, 500.001), (False, 0, 500.011),      # inside the slow command
                 (True, 1, 10.5), (False, 1, 10.6)]            # between two commands
    s = timing_summary(_samples(rows), gc_events)
    assert s["gc"]["0"]["count"] == 1 and round(s["gc"]["0"]["max_ms"], 6) == 10.0
    assert s["gc"]["1"]["count"] == 1
    assert s["tail"]["samples"] == 1 and s["tail"]["with_gc"] == 1
    assert round(s["tail"]["off_cpu_ms"], 6) == 19.0 and round(s["tail"]["db_cpu_ms"], 6) == 0.5
    assert s["by_command"][4]["samples"] == 1 and s["by_command"][2]["samples"] == 99


def test_no_samples_is_no_figures():
    s = timing_summary(_samples([]), [])
    assert s["samples"] == 0 and s["p99_ms"] is None
