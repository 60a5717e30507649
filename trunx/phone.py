"""Phone numbers: E.164 validation and the national forms a carrier may deliver."""
from __future__ import annotations

from trunx import patterns
from trunx.errors import InvalidInput


class InvalidNumber(InvalidInput, ValueError):
    """Not a phone number we can use (also a ValueError: it is one)."""

    def __init__(self, message: str):
        super().__init__("invalid-number", message)


def is_e164(value) -> bool:
    """A whole string of `+` and ASCII digits (no trailing newline, no other scripts'
    digits); +1 numbers must be NANP."""
    return patterns.matches(patterns.PHONE_RE, value)


def to_e164(value: str, default_country: str = "1") -> str:
    """Normalise what a carrier or dialplan hands us: `+E164`, NANP 10 or 11 digits."""
    if not isinstance(value, str):
        raise InvalidNumber("phone number must be a string")
    digits = value.strip()
    if is_e164(digits):
        return digits
    if digits.isascii() and digits.isdigit():
        if default_country == "1" and len(digits) == 10 and digits[0] in "23456789":
            return "+1" + digits
        if default_country == "1" and len(digits) == 11 and digits[0] == "1":
            return "+" + digits
    raise InvalidNumber(f"not an E.164 number: {value!r}")
