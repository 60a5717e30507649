"""Webhook signatures: HMAC-SHA256 over "{timestamp}.{body}", hex."""
from __future__ import annotations

import hashlib
import hmac

from trunx import webhook_sign


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = '{"id":"evt_1","status":"ringing"}'
    expected = hmac.new(b"s3cret", b"1773070200." + body.encode(), hashlib.sha256).hexdigest()
    assert webhook_sign.sign("s3cret", 1773070200, body) == expected
    assert webhook_sign.sign("s3cret", "1773070200", body.encode()) == expected


def test_headers_carry_timestamp_signature_and_event_id():
    h = webhook_sign.headers("k", "{}", "evt_9", now=1773070200.7)
    assert h["X-Trunx-Timestamp"] == "1773070200"
    assert h["X-Trunx-Signature"] == webhook_sign.sign("k", 1773070200, "{}")
    assert h["X-Trunx-Event-Id"] == "evt_9" and h["Content-Type"] == "application/json"


def test_verify_refuses_other_bodies_secrets_and_old_timestamps():
    sig = webhook_sign.sign("k", 1000, "{}")
    assert webhook_sign.verify("k", "1000", "{}", sig, now=1100)
    assert not webhook_sign.verify("k", "1000", "{} ", sig, now=1100)
    assert not webhook_sign.verify("other", "1000", "{}", sig, now=1100)
    assert not webhook_sign.verify("k", "1000", "{}", sig, now=2000)      # a replay
    assert not webhook_sign.verify("k", "soon", "{}", sig, now=1000)
    assert not webhook_sign.verify("k", "1000", "{}", None, now=1000)
