"""Accounts and API keys.

A key is `tk_live_` + 32 random bytes (url-safe base64). Only its sha256 is stored, so a
leaked database does not leak working keys; the plaintext is returned once, at creation.
sha256 rather than a slow password hash is enough here: the key carries 256 bits of entropy,
so there is nothing to brute-force, and every API request must check one quickly.
"""
from __future__ import annotations

import hashlib
import secrets

from trunx.models import Account, ApiKey, utcnow

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


def revoke_key(key_id: str) -> bool:
    return bool(ApiKey.update(revoked_at=utcnow())
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_null()).execute())


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
