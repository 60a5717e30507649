"""The do-not-call list: durable in SQLite (with where each entry came from), mirrored in Redis.

SQLite is written first; Redis mirrors it and `resync` rebuilds the mirror. A number is
suppressed if either store says so, so a Redis outage can't let a call through to a number
that SQLite already holds. POST /api/voice asks SQLite alone (`is_suppressed` without
`redis`): the record holds every number Redis does, and its probe ran anyway whenever
Redis said no, so the Redis round trip bought nothing on that path.
"""
from __future__ import annotations

import peewee

from trunx import db, redis_schema
from trunx.models import Suppression


def suppress(account_id: str, number: str, *, source: str, redis=None, **where) -> Suppression:
    """Add `number` to the account's list; idempotent (the first entry's origin is kept)."""
    try:
        # its own (sub)transaction: on PostgreSQL a failed INSERT aborts the transaction
        # around it, and the lookup below must still run
        with Suppression._meta.database.atomic():
            row = Suppression.create(account=account_id, number=number, source=source,
                                     **where)
    except peewee.IntegrityError:
        row = Suppression.get(Suppression.account == account_id, Suppression.number == number)
    if redis is not None:
        redis.sadd(redis_schema.dnc_key(account_id), number)
    return row


def is_suppressed(account_id: str, number: str, redis=None) -> bool:
    if redis is not None:
        try:
            if redis.sismember(redis_schema.dnc_key(account_id), number):
                return True
        except Exception:  # Redis down: SQLite is the record
            pass
    return bool(_SUPPRESSED.rows(Suppression._meta.database, account_id, number))


# "": the account id, then the number (SQL built once: the check runs on every call placed)
_SUPPRESSED = db.Prepared(lambda: Suppression.select(Suppression.id).where(
    Suppression.account == "", Suppression.number == ""))


def remove(account_id: str, number: str, redis=None) -> bool:
    deleted = Suppression.delete().where(Suppression.account == account_id,
                                         Suppression.number == number).execute()
    if redis is not None:
        redis.srem(redis_schema.dnc_key(account_id), number)
    return bool(deleted)
