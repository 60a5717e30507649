"""Accounts and API keys.

A key is `tk_live_` + 32 random bytes (url-safe base64). Only its sha256 is stored, so a
leaked database does not leak working keys; the plaintext is returned once, at creation.
sha256 rather than a slow password hash is enough here: the key carries 256 bits of entropy,
so there is nothing to brute-force, and every API request must check one quickly.
"""
from __future__ import annotations

import hashlib
import secrets

from trunx import db
from trunx.errors import InvalidInput, NotFound
from trunx.models import Account, ApiKey, utcnow

KEY_PREFIX = "tk_live_"
_SHOWN_PREFIX = 12   # characters kept in clear for listings: "tk_live_AbCd"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_account(name: str) -> Account:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("invalid-request", "an account needs a name")
    return Account.create(name=name)


def create_key(account: Account | str, name: str | None = None) -> str:
    """Make a new key for `account` and return its plaintext (the only time it exists)."""
    account_id = account.id if isinstance(account, Account) else account
    if Account.get_or_none(Account.id == account_id) is None:
        raise NotFound("account-not-found", f"no account {account_id!r}",
                       {"id": account_id})
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    ApiKey.create(account=account_id, prefix=plaintext[:_SHOWN_PREFIX],
                  key_hash=hash_key(plaintext), name=name)
    return plaintext


def revoke_key(key_id: str) -> bool:
    """Revoke a key; every API worker refuses it from its next request (see KeyCache)."""
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


class KeyCache:
    """Accounts behind the keys this API worker has seen, so a request costs one index
    probe on `apikey.key_hash` (a prepared statement, no join, no model building) instead of
    a peewee join. The probe runs on every request, so a key revoked anywhere (the API, the
    CLI, straight in the database, another host) is refused at once; there is no Redis
    round trip and no window of trust. Only the account's id is relied on: handlers read
    anything else about the account from the database (`database`, the store's)."""

    def __init__(self, database, max_entries: int = 10_000):
        self._database = database
        self.max_entries = max_entries
        self._entries: dict[str, Account] = {}

    def authenticate(self, bearer: str | None) -> Account | None:
        if not bearer or not bearer.startswith(KEY_PREFIX) or len(bearer) > 200:
            return None
        digest = hash_key(bearer)
        rows = _LIVE_KEY.rows(self._database, digest)
        if not rows:
            self._entries.pop(digest, None)
            return None
        account = self._entries.get(digest)
        if account is None or account.id != rows[0][0]:
            account = Account.get_or_none(Account.id == rows[0][0])
            if account is None:
                return None
            if len(self._entries) >= self.max_entries:   # only live keys take room
                self._entries.clear()
            self._entries[digest] = account
        return account


# The account a live (unrevoked) key belongs to; "" stands for the digest.
_LIVE_KEY = db.Prepared(lambda: ApiKey.select(ApiKey.account).where(
    ApiKey.key_hash == "", ApiKey.revoked_at.is_null()))
