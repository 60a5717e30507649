"""The AMD detector core on synthetic audio: pure, no tools. Speech is stood in for by
syllable-like bursts of noise; tones are exact sines."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from agi_server.amd.detector import (
    FRAME_BYTES,
    Beep,
    Detector,
    Fax,
    Human,
    Machine,
    Result,
    SilenceAfterSpeech,
    SpeechStarted,
)

RATE = 8000


def silence(s: float) -> np.ndarray:
    return np.zeros(int(s * RATE))


def talk(s: float, seed: int = 1) -> np.ndarray:
    """Bursts of 180 ms of noise with 70 ms gaps, at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, 0.1, int(s * RATE))
    period, on = int(0.25 * RATE), int(0.18 * RATE)
    out[(np.arange(len(out)) % period) >= on] = 0
    return out


def sine(hz: float, ms: int, level: float = 0.3) -> np.ndarray:
    return level * np.sin(2 * np.pi * hz * np.arange(RATE * ms // 1000) / RATE)


def pcm(*parts) -> bytes:
    return (np.clip(np.concatenate(parts), -1, 0.999) * 32768).astype("<i2").tobytes()


def events_of(data: bytes, chunks=None, **kwargs) -> list:
    d = Detector(**kwargs)
    out = []
    if chunks is None:
        chunks = range(0, len(data), FRAME_BYTES)
        pieces = (data[i:i + FRAME_BYTES] for i in chunks)
    else:
        pieces = chunks
    for piece in pieces:
        out += d.feed(piece)
    return out + d.feed(b"")


def result(events) -> Result:
    (r,) = [e for e in events if isinstance(e, Result)]
    return r


def test_a_short_hello_then_silence_is_human():
    events = events_of(pcm(silence(0.5), talk(0.9), silence(3)))
    assert [type(e) for e in events][:2] == [SpeechStarted, SilenceAfterSpeech]
    assert isinstance(events[2], Human) and result(events).answered_by == "human"
    assert 500 <= events[0].at_ms <= 560
    # decided speech_end_threshold (1.2 s) after the speech ended
    assert abs(result(events).at_ms - (500 + 900 + 1200)) <= 120


def test_a_long_greeting_ending_in_a_beep_is_a_machine_with_the_beep_end():
    data = pcm(silence(0.3), talk(5), silence(0.5), sine(1000, 300), silence(2))
    events = events_of(data)
    machine = next(e for e in events if isinstance(e, Machine))
    assert abs(machine.at_ms - (300 + 2400)) <= 100
    (beep,) = [e for e in events if isinstance(e, Beep)]
    assert abs(beep.end_ms - 6100) <= 20 and abs(beep.freq_hz - 1000) < 15
    assert result(events) == Result("machine_end_beep", result(events).at_ms, beep.end_ms)
    # Enable: the answer is known at the speech threshold, before the greeting ends
    assert result(events_of(data, mode="Enable")).answered_by == "machine_start"


def test_no_beep_means_the_silence_ends_the_greeting():
    r = result(events_of(pcm(talk(4), silence(3))))
    assert r.answered_by == "machine_end_silence" and abs(r.at_ms - (4000 + 1500)) <= 120


@pytest.mark.parametrize("hz,ms", [(300, 400), (3000, 400), (1000, 60)])
def test_tones_outside_the_band_or_too_short_are_not_beeps(hz, ms):
    events = events_of(pcm(talk(4), silence(0.3), sine(hz, ms), silence(3)))
    assert not [e for e in events if isinstance(e, Beep)]
    assert result(events).answered_by == "machine_end_silence"


def test_fax_and_dead_air():
    events = events_of(pcm(silence(0.4), sine(1100, 500), silence(3), sine(1100, 500)))
    assert isinstance(events[0], Fax) and result(events).answered_by == "fax"
    assert result(events_of(pcm(silence(0.2), sine(2100, 2500)))).answered_by == "fax"
    r = result(events_of(pcm(silence(7))))
    assert (r.answered_by, r.at_ms) == ("unknown", 5000)


def test_thresholds_are_arguments():
    hello = pcm(talk(1.5), silence(3))
    assert result(events_of(hello)).answered_by == "human"
    assert result(events_of(hello, speech_threshold_ms=1000)).answered_by.startswith("machine")
    late = pcm(silence(3), talk(1), silence(3))
    assert result(events_of(late, silence_timeout_ms=2000)).answered_by == "unknown"
    assert result(events_of(pcm(talk(8)), timeout_ms=5000)).answered_by == "machine_end_other"


def test_any_chunking_gives_the_same_events():
    data = pcm(silence(0.3), talk(3.5), silence(0.4), sine(1400, 200), silence(2))
    whole = events_of(data)
    rng = np.random.default_rng(5)
    cuts = np.cumsum(rng.integers(1, 900, size=len(data)))
    cuts = [0, *cuts[cuts < len(data)].tolist(), len(data)]
    assert events_of(data, chunks=[data[a:b] for a, b in itertools.pairwise(cuts)]) == whole
    assert events_of(data, chunks=[data]) == whole


def test_misuse():
    with pytest.raises(ValueError):
        Detector(mode="enable")
    d = Detector()
    with pytest.raises(TypeError):
        d.feed("not bytes")
    assert result(d.feed(b"")).answered_by == "unknown"
    assert d.feed(pcm(talk(1))) == [] and d.feed(b"") == []
