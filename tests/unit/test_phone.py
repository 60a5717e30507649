import pytest

from trunx.phone import InvalidNumber, is_e164, to_e164


@pytest.mark.parametrize("number,ok", [
    ("+19495551234", True), ("+442071234567", True), ("+861012345678", True),
    ("+1949555123", False),    # NANP numbers have ten digits after the +1
    ("+10495551234", False),   # NANP area codes start 2-9
    ("+19491551234", False),   # and so do exchanges
    ("+0123456789", False), ("19495551234", False), ("+1949555123x", False),
    ("+1234567", False), ("+1234567890123456", False), (None, False), (19495551234, False),
])
def test_is_e164(number, ok):
    assert is_e164(number) is ok


@pytest.mark.parametrize("raw,e164", [
    ("+19495551234", "+19495551234"), ("9495551234", "+19495551234"),
    ("19495551234", "+19495551234"), (" +442071234567 ", "+442071234567"),
])
def test_to_e164_normalises_carrier_forms(raw, e164):
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "anonymous", "1949555123", "0495551234", "+1949", None])
def test_to_e164_refuses_the_rest(raw):
    with pytest.raises(InvalidNumber):
        to_e164(raw)
