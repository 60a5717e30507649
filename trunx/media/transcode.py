"""sox wrappers: any accepted input -> Asterisk's native 8 kHz mono 16-bit PCM WAV.

Asterisk plays `.wav` (format_wav) without transcoding only when it is signed linear
8 kHz mono; anything else is either refused or converted on every playback.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import wave

from .errors import BadMedia, ToolFailed, UnsupportedMedia, tail
from .sniff import sniff_file

SOX = "sox"
SOXI = "soxi"
NATIVE = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]
# Trim quiet (< 0.5 % of full scale) lead-in and tail; 50 ms keeps soft consonants intact.
_TRIM = ["silence", "1", "0.05", "0.5%", "reverse", "silence", "1", "0.05", "0.5%", "reverse"]


def _run(cmd: list[str], timeout: float, code: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ToolFailed("tool-missing", f"{cmd[0]} is not installed", {"tool": cmd[0]}) from exc
    except subprocess.TimeoutExpired as exc:
        raise BadMedia(code, f"{cmd[0]} took longer than {timeout:g} s",
                       {"stderr": tail(exc.stderr or b"")}) from exc


def transcode(src_path: str, dst_path: str, *, trim_silence: bool = False,
              src_type: str | None = None, timeout: float = 120.0) -> str:
    """Write `dst_path` as 8 kHz mono s16 WAV, or raise MediaError and leave nothing there.

    `src_type` ('wav'|'mp3'|'ogg') defaults to what the file's bytes say, never its name.
    Returns `dst_path`.
    """
    src_type = src_type or sniff_file(src_path)
    if src_type is None:
        raise UnsupportedMedia("unsupported-media-type", "input is not wav, mp3 or ogg audio")
    dst_dir = os.path.dirname(os.path.abspath(dst_path))
    os.makedirs(dst_dir, exist_ok=True)
    # Same folder as the target, so the final os.replace is an atomic rename, not a copy.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst_path)}.", suffix=".tmp",
                               dir=dst_dir)
    os.close(fd)
    # -G: guard against clipping when resampling loud input (sox would only warn).
    # abspath: a path starting with "-" would be read by sox as an option.
    cmd = [SOX, "-G", "-t", src_type, os.path.abspath(src_path), "-t", "wav", *NATIVE, tmp]
    if trim_silence:
        cmd += _TRIM
    try:
        proc = _run(cmd, timeout, "transcode-failed")
        if proc.returncode != 0:
            raise BadMedia("transcode-failed", f"sox could not convert the {src_type} input",
                           {"exit_code": proc.returncode, "stderr": tail(proc.stderr)})
        if _frames(tmp) == 0:
            raise BadMedia("empty-audio", "the input decodes to no audio",
                           {"stderr": tail(proc.stderr)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())   # the rename must not outlive the data on a crash
        os.chmod(tmp, 0o644)       # mkstemp makes 0600; Asterisk may run as another user
        os.replace(tmp, dst_path)
    except BaseException:
        _unlink(tmp)
        raise
    return dst_path


def duration(path: str) -> float:
    """Seconds of audio in `path`, measured from the samples, not from a tag."""
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError):
        pass  # not plain PCM WAV: ask sox, which decodes the real stream
    proc = _run([SOXI, "-D", os.path.abspath(path)], 30.0, "transcode-failed")
    try:
        return float(proc.stdout.decode().strip())
    except ValueError as exc:
        raise BadMedia("transcode-failed", "soxi could not measure the audio",
                       {"stderr": tail(proc.stderr)}) from exc


def _frames(path: str) -> int:
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes()
    except (wave.Error, EOFError):
        return 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- call recordings ------------------------------------------------------------------------
RECORDING_FORMATS = ("mp3", "wav")


def read_pcm_wav(path: str) -> tuple[bytes, int, int, int]:
    """(PCM bytes, channels, sample width, rate) of a WAV that may still lack its final
    header: Asterisk's format_wav writes the data size only when it closes the file, so
    the samples are taken from the `data` chunk to the end of the file."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise BadMedia("transcode-failed", "the recording is not a WAV file",
                       {"path": os.path.basename(path)})
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], int.from_bytes(blob[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            fmt = blob[pos + 8:pos + 8 + 16]
        elif cid == b"data":
            data = blob[pos + 8:]          # to EOF, whatever the header says
            break
        pos += 8 + size + (size & 1)
    if fmt is None or data is None or len(fmt) < 16:
        raise BadMedia("transcode-failed", "the recording has no audio chunk",
                       {"path": os.path.basename(path)})
    channels = int.from_bytes(fmt[2:4], "little")
    rate = int.from_bytes(fmt[4:8], "little")
    width = int.from_bytes(fmt[14:16], "little") // 8
    frame = max(1, channels * width)
    return data[:len(data) - len(data) % frame], channels, width, rate


def encode_recording(raw_path: str, dst_path: str, fmt: str, *, trim_silence: bool = False,
                     timeout: float = 600.0) -> float:
    """A MixMonitor WAV -> `dst_path` as mp3 or wav (8 kHz mono); returns its duration in
    seconds, measured from the samples before mp3 encoding (an mp3's frames pad the end).
    With trim_silence the quiet lead-in and tail are cut; a recording that is silence
    throughout is kept as it is rather than trimmed to nothing."""
    if fmt not in RECORDING_FORMATS:
        raise ValueError(f"format must be one of {RECORDING_FORMATS}, not {fmt!r}")
    pcm, channels, width, rate = read_pcm_wav(raw_path)
    dst_dir = os.path.dirname(os.path.abspath(dst_path))
    os.makedirs(dst_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rec-", dir=dst_dir) as work:
        clean = os.path.join(work, "clean.wav")
        with wave.open(clean, "wb") as w:
            w.setnchannels(channels or 1)
            w.setsampwidth(width or 2)
            w.setframerate(rate or 8000)
            w.writeframes(pcm)
        wav = clean
        if trim_silence and pcm:
            trimmed = os.path.join(work, "trimmed.wav")
            proc = _run([SOX, "-G", clean, "-t", "wav", *NATIVE, trimmed, *_TRIM], timeout,
                        "transcode-failed")
            if proc.returncode != 0:
                raise BadMedia("transcode-failed", "sox could not trim the recording",
                               {"exit_code": proc.returncode, "stderr": tail(proc.stderr)})
            if _frames(trimmed) > 0:
                wav = trimmed
        seconds = duration(wav) if pcm else 0.0
        out = os.path.join(work, "out." + fmt)
        if fmt == "wav":
            proc = _run([SOX, "-G", wav, "-t", "wav", *NATIVE, out], timeout, "transcode-failed")
        elif pcm:
            proc = _run([SOX, "-G", wav, "-t", "mp3", out], timeout, "transcode-failed")
        else:    # nothing recorded: an mp3 encoder has no frame to write
            proc = _run([SOX, "-n", "-r", "8000", "-c", "1", "-t", "mp3", out, "trim", "0",
                         "0.001"], timeout, "transcode-failed")
        if proc.returncode != 0:
            raise BadMedia("transcode-failed", f"sox could not write the {fmt} recording",
                           {"exit_code": proc.returncode, "stderr": tail(proc.stderr)})
        os.chmod(out, 0o644)
        os.replace(out, dst_path)
    return seconds
