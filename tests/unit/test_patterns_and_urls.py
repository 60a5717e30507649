"""The shapes written once (trunx/patterns.py) and the address policy of user URLs
(trunx/url_policy.py): whole strings, ASCII digits, no paths, no way into the network."""
from __future__ import annotations

import pytest

from trunx import patterns, url_policy
from trunx.phone import is_e164, to_e164


@pytest.mark.parametrize(("value", "ok"), [
    ("+19495551234", True), ("+447911123456", True),
    ("+19495551234\n", False), ("+1949555١٢٣٤", False), ("+１９４９５５５１２３４", False),
    ("+11234567890", False), ("+1415555987", False), (" +19495551234", False),
])
def test_phone_numbers_are_whole_ascii_strings(value, ok):
    assert is_e164(value) is ok
    assert patterns.matches(patterns.PHONE_RE, value) is ok


def test_national_forms_take_ascii_digits_only():
    assert to_e164("9495551234") == "+19495551234"
    with pytest.raises(ValueError):
        to_e164("949555١٢٣٤")


@pytest.mark.parametrize(("ref", "ok"), [
    ("welcome.wav", True), ("vm-goodbye", True), ("digits/1", True),
    ("aud_0123456789abcdef", True),
    ("/etc/passwd", False), ("../x", False), ("digits/../../x", False),
    ("sounds/aud_0123456789abcdef", False), ("x/aud_1/y", False), ("welcome\n", False),
    ("a//b", False), (".hidden", False), ("a b", False),
])
def test_audio_refs_are_never_paths(ref, ok):
    assert patterns.matches(patterns.AUDIO_REF_RE, ref) is ok


@pytest.mark.parametrize("pattern", [patterns.NAME, patterns.PHONE, patterns.DTMF_KEYS,
                                     patterns.AUDIO_REF, patterns.URL, patterns.DURATION])
def test_published_patterns_have_no_newline_hole(pattern):
    import re

    anchored = re.compile(patterns.schema_pattern(pattern))
    sample = {"NAME": "main", "PHONE": "+19495551234", "DTMF_KEYS": "1",
              "AUDIO_REF": "welcome", "URL": "https://x.example/h", "DURATION": "300s"}
    value = next(v for k, v in sample.items() if getattr(patterns, k) == pattern)
    assert anchored.search(value)
    # Python's $ would take value + "\n"; the API's fullmatch does not
    assert not patterns.compiled(pattern).fullmatch(value + "\n")


@pytest.mark.parametrize("url", [
    "http://[::1", "http://x:99999/", "ftp://x/", "javascript:alert(1)", "http://a b/",
    "http://x\r\n/", "http://[::1]/", "", "http://" + "a" * 3000,
])
def test_urls_that_do_not_parse_are_refused_as_input(url):
    with pytest.raises(url_policy.UrlRefused) as caught:
        url_policy.parse(url)
    assert caught.value.code == "invalid-url"


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("169.254.169.254", False),
    ("0.0.0.0", False), ("::1", False), ("::ffff:127.0.0.1", False), ("fe80::1%eth0", False),
    ("2002:7f00:1::", False), ("224.0.0.1", False), ("2001:4860:4860::8888", True),
])
def test_the_address_policy(address, public):
    assert url_policy.is_public(address) is public


def test_loopback_is_refused_unless_allowed_and_credentials_are_masked():
    with pytest.raises(url_policy.UrlRefused) as caught:
        url_policy.check_input("http://127.0.0.1:9/hook", allow_private=False)
    assert caught.value.code == "url-not-allowed"
    assert url_policy.check_input("http://127.0.0.1:9/hook", allow_private=True)
    target = url_policy.target("http://localhost:8080/x", allow_private=True)
    assert target.port == 8080 and target.address in ("127.0.0.1", "::1")
    assert url_policy.mask("https://user:s3cret@hooks.example/x") == \
        "https://***@hooks.example/x"
