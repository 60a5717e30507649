import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunx.media.sniff import sniff

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize("data,kind", [
    (WAV, "wav"),
    (b"OggS\x00\x02" + b"\x00" * 20, "ogg"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x21" + b"\x00" * 10, "mp3"),
    (b"ID3\x03\x00\x00\x00\x00\x01\x00", "mp3"),
    (b"\xff\xfb\x90\x64" + b"\x00" * 8, "mp3"),    # MPEG-1 layer III, 128 kb/s, 44.1 kHz
    (b"\xff\xf3\x40\xc4" + b"\x00" * 8, "mp3"),    # MPEG-2 layer III (what sox writes at 22 kHz)
    (b"\xff\xe3\x18\xc4", "mp3"),                  # MPEG-2.5 layer III
    (PNG, None),
    (b"GIF89a", None),
    (b"hello, this is plain text\n", None),
    (b"", None),
    (b"RIFF\x00\x00\x00\x00AVI LIST", None),       # RIFF, but video
    (b"RIFF", None),                               # too short to tell
    (b"ID3", None),
    (b"ID3\xff\x00\x00\x00\x00\x00\x00", None),    # not a real ID3 version
    (b"\xff\xfd\x90\x64", None),                   # layer II, not mp3
    (b"\xff\xff\x90\x64", None),                   # layer I
    (b"\xff\xeb\x90\x64", None),                   # reserved MPEG version
    (b"\xff\xfb\xf0\x64", None),                   # bitrate index 15 is invalid
    (b"\xff\xfb\x9c\x64", None),                   # sample-rate index 3 is reserved
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),       # JPEG also starts with 0xFF
    (b"fLaC\x00\x00\x00\x22", None),               # real audio, but not accepted
])
def test_sniff_table(data, kind):
    assert sniff(data) == kind


def test_sniff_ignores_what_follows_the_magic():
    assert sniff(WAV + b"\x00" * 1000) == "wav"
    assert sniff(b"OggS") == "ogg"


@given(st.binary(max_size=64))
def test_any_bytes_give_a_known_answer(data):
    assert sniff(data) in {"wav", "mp3", "ogg", None}


@given(st.binary(max_size=64))
def test_png_prefix_is_never_audio(rest):
    assert sniff(PNG + rest) is None
