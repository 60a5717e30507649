"""Phone numbers: E.164 validation and the national forms a carrier may deliver."""
from __future__ import annotations

import re

from trunx.errors import InvalidInput

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Every +1 number is in the North American Numbering Plan: NXX-NXX-XXXX, as the dialplan's
# patterns say too, so a number one side accepts the other never refuses.
_NANP = re.compile(r"^\+1[2-9]\d\d[2-9]\d{6}$")


class InvalidNumber(InvalidInput, ValueError):
    """Not a phone number we can use (also a ValueError: it is one)."""

    def __init__(self, message: str):
        super().__init__("invalid-number", message)


def is_e164(value) -> bool:
    if not isinstance(value, str) or not _E164.match(value):
        return False
    return not value.startswith("+1") or bool(_NANP.match(value))


def to_e164(value: str, default_country: str = "1") -> str:
    """Normalise what a carrier or dialplan hands us: `+E164`, NANP 10 or 11 digits."""
    if not isinstance(value, str):
        raise InvalidNumber("phone number must be a string")
    digits = value.strip()
    if is_e164(digits):
        return digits
    if digits.isdigit():
        if default_country == "1" and len(digits) == 10 and digits[0] in "23456789":
            return "+1" + digits
        if default_country == "1" and len(digits) == 11 and digits[0] == "1":
            return "+" + digits
    raise InvalidNumber(f"not an E.164 number: {value!r}")
