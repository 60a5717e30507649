"""The shapes of identifiers, numbers and single-line text, written once.

Validation matches a whole string (`fullmatch`: a `^...$` pattern used with `match` lets
a trailing newline through, and a newline in an AGI argument is a second command) and
knows ASCII digits only (`\\d` in a str pattern also takes `١٢٣`). The OpenAPI document
takes the same pattern strings (`schema_pattern`), so a schema is exactly as strict as
the check behind it.
"""
from __future__ import annotations

import re

# The alphabets, as plain strings: no anchors, no `\d`.
NAME = r"[A-Za-z0-9_.\-]{1,64}"            # IVR ids, node names, agent ids in a tree
E164 = r"\+[1-9][0-9]{7,14}"
# Every +1 number is in the North American Numbering Plan: NXX-NXX-XXXX, as the dialplan's
# patterns say too, so a number one side accepts the other never refuses.
NANP = r"\+1[2-9][0-9][0-9][2-9][0-9]{6}"
PHONE = rf"{NANP}|\+[2-9][0-9]{{7,14}}"     # what trunx takes: E.164, and NANP if +1
DTMF_KEYS = r"[0-9*#]{1,10}"
ASSET_ID = r"aud_[0-9a-f]{16}"
# An audio reference in a tree is an asset id, an asset name or an Asterisk sound name
# (`vm-goodbye`, `digits/1`): relative, segments of word characters, never `..`, never a
# path into the staged assets (`aud_...` as a segment of a longer ref). Asset names
# outside this alphabet are referred to by their id.
AUDIO_REF = (r"(?!.*\.\.)(?![^/]*/(?:[^/]*/)*aud_)"
             r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*")
AUDIO_REF_MAX = 200

# An http(s) URL as trunx takes it: optional user:password@, a host name or IPv4 address
# (no IPv6 literals), a port up to 65535, no spaces or control characters.
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL = (r"[Hh][Tt][Tt][Pp][Ss]?://(?:[^\s/?#@\[\]\x00-\x1f\x7f]*@)?[A-Za-z0-9\-.]*[A-Za-z0-9\-]"
       rf"(?::{_PORT})?(?:[/?#][^\s\x00-\x1f\x7f]*)?")
# A duration as the seeds write it, "300s": 1 to 86400 seconds, at most 3 decimals
DURATION = (r"(?:(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2})"
            r"(?:\.[0-9]{1,3})?|86400(?:\.0{1,3})?)s")
SINGLE_LINE = r"[^\x00-\x1f\x7f]*"
TEXT = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*"
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")        # CR, LF, NUL and the other C0 codes
TEXT_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")   # keeps \t \n \r


def compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.ASCII)


def schema_pattern(pattern: str) -> str:
    """The pattern as JSON Schema (ECMA-262, unanchored) wants it: anchored at both ends
    (`$` there matches only at the very end)."""
    return f"^(?:{pattern})$"


NAME_RE = compiled(NAME)
E164_RE = compiled(E164)
NANP_RE = compiled(NANP)
PHONE_RE = compiled(PHONE)
DTMF_KEYS_RE = compiled(DTMF_KEYS)
ASSET_ID_RE = compiled(ASSET_ID)
AUDIO_REF_RE = compiled(AUDIO_REF)
URL_RE = compiled(URL)
DURATION_RE = compiled(DURATION)


def matches(pattern: re.Pattern, value) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def single_line(value: str) -> bool:
    """No CR, LF, NUL or other control character: safe in a log line, a header, a
    channel variable."""
    return CONTROL_CHARS.search(value) is None


def plain_text(value: str) -> bool:
    """Text that may span lines (a prompt to speak), with no NUL or other control code."""
    return TEXT_CONTROL_CHARS.search(value) is None
