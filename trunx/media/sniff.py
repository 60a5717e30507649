"""What kind of audio a blob is, judged by its bytes only (a file name is user input)."""
from __future__ import annotations

# MPEG audio frame header: 11 sync bits, then version (00 = 2.5, 10 = 2, 11 = 1; 01 reserved)
# and layer (01 = III, 10 = II, 11 = I; 00 reserved). We accept layer III only: that is what
# "mp3" means, and it rejects the many random byte pairs that start with 0xFF 0xE?.
_MP3_LAYER3 = 0b01


def _mpeg_frame(b: bytes) -> bool:
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version = (b[1] >> 3) & 0b11
    layer = (b[1] >> 1) & 0b11
    bitrate = b[2] >> 4
    rate = (b[2] >> 2) & 0b11
    # bitrate 0b1111 and sample rate 0b11 are "bad" in every version
    return version != 0b01 and layer == _MP3_LAYER3 and bitrate != 0b1111 and rate != 0b11


def sniff(data: bytes) -> str | None:
    """'wav' | 'mp3' | 'ogg' | None, from the first bytes of `data`."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    # ID3v2 tag ("ID3", major version 2..4, revision < 0xFF), then the MPEG frames
    if len(data) >= 10 and data[:3] == b"ID3" and 2 <= data[3] <= 4 and data[4] != 0xFF:
        return "mp3"
    if _mpeg_frame(data[:4]):
        return "mp3"
    return None


def sniff_file(path: str) -> str | None:
    with open(path, "rb") as f:
        return sniff(f.read(64))
