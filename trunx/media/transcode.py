"""sox wrappers: any accepted input -> Asterisk's native 8 kHz mono 16-bit PCM WAV.

Asterisk plays `.wav` (format_wav) without transcoding only when it is signed linear
8 kHz mono; anything else is either refused or converted on every playback.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import wave

from .errors import MediaError, tail
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
        raise MediaError("tool-missing", f"{cmd[0]} is not installed", {"tool": cmd[0]}) from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(code, f"{cmd[0]} took longer than {timeout:g} s",
                         {"stderr": tail(exc.stderr or b"")}) from exc


def transcode(src_path: str, dst_path: str, *, trim_silence: bool = False,
              src_type: str | None = None, timeout: float = 120.0) -> str:
    """Write `dst_path` as 8 kHz mono s16 WAV, or raise MediaError and leave nothing there.

    `src_type` ('wav'|'mp3'|'ogg') defaults to what the file's bytes say, never its name.
    Returns `dst_path`.
    """
    src_type = src_type or sniff_file(src_path)
    if src_type is None:
        raise MediaError("unsupported-media-type", "input is not wav, mp3 or ogg audio")
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
            raise MediaError("transcode-failed", f"sox could not convert the {src_type} input",
                             {"exit_code": proc.returncode, "stderr": tail(proc.stderr)})
        if _frames(tmp) == 0:
            raise MediaError("empty-audio", "the input decodes to no audio",
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
        raise MediaError("transcode-failed", "soxi could not measure the audio",
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
