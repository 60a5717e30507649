"""The answering-machine detector over a labelled corpus made here (tests/amd_corpus.py:
espeak-ng and Piper voices, sox tones and noise), frame by frame as a call would feed it."""
from __future__ import annotations

import collections
import time

import pytest

from agi_server.amd.detector import ANSWERED_BY, FRAME_BYTES, Beep, Detector
from tests import amd_corpus
from trunx.media import piper


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return amd_corpus.build_with_available_voices(str(tmp_path_factory.mktemp("amd-corpus")))


def run(answer, **kwargs) -> tuple[object, list, float]:
    """(result, beeps, seconds spent in feed) for 20 ms frames, then the end of audio."""
    detector = Detector(**kwargs)
    data, beeps, spent = answer.pcm.tobytes(), [], 0.0
    for i in range(0, len(data), FRAME_BYTES):
        started = time.perf_counter()
        events = detector.feed(data[i:i + FRAME_BYTES])
        spent += time.perf_counter() - started
        beeps += [e for e in events if isinstance(e, Beep)]
    detector.feed(b"")
    return detector.result, beeps, spent


def test_the_corpus_is_what_it_says(corpus):
    kinds = collections.Counter(a.kind for a in corpus)
    assert len(corpus) >= 40 and kinds["human"] >= 15 and kinds["machine"] >= 20
    assert kinds["fax"] >= 1 and kinds["silence"] >= 1
    machines = [a for a in corpus if a.kind == "machine"]
    assert all(3.0 <= a.greeting_s <= 20.0 for a in machines)
    beeped = [a for a in machines if a.beep_end_ms is not None]
    assert len({a.beep_hz for a in beeped}) >= 8 and len(beeped) < len(machines)
    assert min(a.beep_hz for a in beeped) == 400 and max(a.beep_hz for a in beeped) == 2200
    assert sum("noise" in a.name for a in corpus) >= 8
    assert sum("piper" in a.name for a in corpus) >= (4 if piper.available() else 0)


def test_detector_over_the_corpus(corpus):
    matrix = collections.Counter()
    right = total = beeps_found = beeped = 0
    spent = frames = 0.0
    for answer in corpus:
        result, beeps, seconds = run(answer)
        spent += seconds
        frames += len(answer.pcm) * 2 // FRAME_BYTES
        matrix[answer.expected, result.answered_by] += 1
        if answer.kind in ("human", "machine"):
            total += 1
            said_machine = result.answered_by.startswith("machine")
            right += said_machine == (answer.kind == "machine")
        if answer.beep_end_ms is not None:
            beeped += 1
            beeps_found += any(abs(b.end_ms - answer.beep_end_ms) <= 100 for b in beeps) \
                and abs(result.beep_end_ms - answer.beep_end_ms) <= 100
    rows = [e for e in ANSWERED_BY if any(k[0] == e for k in matrix)]
    cols = [e for e in ANSWERED_BY if any(k[1] == e for k in matrix)]
    print("\nexpected \\ detected  " + " ".join(f"{c[:19]:>19}" for c in cols))
    for r in rows:
        print(f"{r:<20} " + " ".join(f"{matrix[r, c]:>19}" for c in cols))
    print(f"human vs machine {right}/{total}; beeps {beeps_found}/{beeped} within 100 ms; "
          f"{spent / frames * 1e6:.1f} us per 20 ms frame")
    assert right >= 0.95 * total
    assert beeps_found >= 0.95 * beeped
    assert matrix["fax", "fax"] == sum(v for k, v in matrix.items() if k[0] == "fax")
    assert matrix["unknown", "unknown"] == sum(v for k, v in matrix.items()
                                               if k[0] == "unknown")


def test_enable_mode_decides_early(corpus):
    for answer in corpus:
        if answer.kind not in ("human", "machine"):
            continue
        result, _, _ = run(answer, mode="Enable")
        expected = "human" if answer.kind == "human" else "machine_start"
        assert result.answered_by == expected, answer.name
        if answer.kind == "machine":   # speech threshold (2.4 s) + lead-in, not the greeting
            assert result.at_ms < 4000, (answer.name, result)


def test_cost_per_frame_is_small(corpus):
    answer = max(corpus, key=lambda a: len(a.pcm))
    _, _, spent = run(answer)
    per_frame = spent / (len(answer.pcm) * 2 // FRAME_BYTES)
    print(f"\n{per_frame * 1e6:.1f} us per 20 ms frame ({answer.seconds:.0f} s of audio)")
    # one core feeds hundreds of calls: 500 calls at 50 frames/s must fit in well under 1 s
    assert per_frame < 200e-6
