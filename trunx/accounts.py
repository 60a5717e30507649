"""Accounts and API keys.

A key is `tk_live_` + 32 random bytes (url-safe base64). Only its sha256 is stored, so a
leaked database does not leak working keys; the plaintext is returned once, at creation.
sha256 rather than a slow password hash is enough here: the key carries 256 bits of entropy,
so there is nothing to brute-force, and every API request must check one quickly.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time

from trunx.models import Account, ApiKey, utcnow

log = logging.getLogger(__name__)
# Bumped by every revocation; a KeyCache trusts what it verified only under the same value.
KEYS_EPOCH = "trunx:keys:epoch"

KEY_PREFIX = "tk_live_"
_SHOWN_PREFIX = 12   # characters kept in clear for listings: "tk_live_AbCd"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_account(name: str) -> Account:
    name = (name or "").strip()
    if not name:
        raise ValueError("an account needs a name")
    return Account.create(name=name)


def create_key(account: Account | str, name: str | None = None) -> str:
    """Make a new key for `account` and return its plaintext (the only time it exists)."""
    account_id = account.id if isinstance(account, Account) else account
    if Account.get_or_none(Account.id == account_id) is None:
        raise LookupError(f"no account {account_id!r}")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    ApiKey.create(account=account_id, prefix=plaintext[:_SHOWN_PREFIX],
                  key_hash=hash_key(plaintext), name=name)
    return plaintext


def revoke_key(key_id: str, redis=None) -> bool:
    """Revoke a key. With `redis`, every API worker's KeyCache drops what it verified."""
    revoked = bool(ApiKey.update(revoked_at=utcnow())
                   .where(ApiKey.id == key_id, ApiKey.revoked_at.is_null()).execute())
    if redis is not None:
        redis.incr(KEYS_EPOCH)
    return revoked


def authenticate(bearer: str | None) -> Account | None:
    """The account a presented key belongs to, or None (unknown, revoked, malformed)."""
    if not bearer or not bearer.startswith(KEY_PREFIX) or len(bearer) > 200:
        return None
    digest = hash_key(bearer)
    row = (ApiKey.select(ApiKey, Account).join(Account)
           .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_null()).first())
    # Looking up by the hash, not the key, means an index probe's timing says nothing
    # about the plaintext.
    return row.account if row is not None else None


class KeyCache:
    """Keys this API worker has verified, so a request costs one Redis GET, not a database
    join. An entry holds while the revocation epoch in Redis is unchanged (a revocation
    anywhere is seen at once) and for at most `ttl` seconds (a key revoked straight in the
    database, without bumping the epoch, stops working within that). With Redis down,
    every request goes to the database."""

    def __init__(self, redis, ttl: float = 60.0, max_entries: int = 10_000):
        self.redis = redis
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, str, Account]] = {}

    def _epoch(self) -> str | None:
        try:
            return str(self.redis.get(KEYS_EPOCH) or "0")
        except Exception as exc:        # Redis down: fall back to the database
            log.debug("key cache bypassed: %s", exc)
            return None

    def authenticate(self, bearer: str | None) -> Account | None:
        if not bearer or not bearer.startswith(KEY_PREFIX) or len(bearer) > 200:
            return None
        digest, now, epoch = hash_key(bearer), time.monotonic(), self._epoch()
        hit = self._entries.get(digest)
        if hit is not None and epoch is not None and hit[0] > now and hit[1] == epoch:
            return hit[2]
        account = authenticate(bearer)
        if account is not None and epoch is not None:   # only good keys take room
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (now + self.ttl, epoch, account)
        return account
