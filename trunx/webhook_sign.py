"""Signing call webhooks, and checking a signature (for receivers, and our tests).

    X-Trunx-Timestamp: 1773070200                    unix seconds when this attempt was sent
    X-Trunx-Signature: hex(HMAC-SHA256(secret, f"{timestamp}.{body}"))[,hex(...previous)]

The body is signed exactly as sent (bytes of the JSON). The timestamp is inside the MAC,
so a receiver that refuses timestamps older than a few minutes also refuses replays.
The secret is the operator's `webhook_secret` when configured, else the account's own
(`GET /api/account` shows it; it is made on first use). After the account's secret is
rotated (POST /api/account/webhook-secret), the previous one signs too for a while: the
header then carries both signatures, comma-separated, and a receiver holding either
secret verifies the webhook; `verify` accepts any one that matches.
"""
from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Trunx-Timestamp"
SIGNATURE_HEADER = "X-Trunx-Signature"
EVENT_HEADER = "X-Trunx-Event-Id"


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    message = _bytes(str(timestamp)) + b"." + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def headers(secret: str | tuple[str, ...] | list[str], body: str | bytes, event_id: str,
            now: float | None = None) -> dict:
    """`secret`: one secret, or the current one and then the previous (during a rotation)."""
    timestamp = int(time.time() if now is None else now)
    keys = [secret] if isinstance(secret, str) else list(secret)
    return {"Content-Type": "application/json", "User-Agent": "trunx-webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: ",".join(sign(k, timestamp, body) for k in keys),
            EVENT_HEADER: event_id}


def verify(secret: str, timestamp: str, body: str | bytes, signature: str, *,
           tolerance: float = 300, now: float | None = None) -> bool:
    """True if `signature` is ours for this body and the timestamp is recent enough."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (TypeError, ValueError):
        return False
    if age > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, one.strip())
               for one in (signature or "").split(","))
