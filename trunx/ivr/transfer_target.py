"""An account's default transfer target: where a transfer node naming neither `to` nor
`agent` sends the caller (the IVR seed's bare `{"action": "transfer"}`).

Stored on the Account row (`default_transfer`: an agent id of the account, or an E.164
number) and published to Redis (`redis_schema.default_transfer_key`) as {"agent": id} or
{"to": number}, where the engine reads it when a call reaches such a node. The API writes
the row first, then Redis; `resync` rebuilds every account's key from the rows.
"""
from __future__ import annotations

import json

from trunx import redis_schema
from trunx.errors import invalid
from trunx.phone import is_e164


def _refuse(message: str):
    return invalid("default_transfer", "invalid-transfer-target", message)


def check(account_id: str, value) -> str | None:
    """The value to store for `value` (None clears); a 422 naming the field if it is
    neither an E.164 number nor an agent of the account."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _refuse("default_transfer is an agent id of this account or an E.164 "
                            "number, or null")
    if value.startswith("+"):
        if not is_e164(value):
            raise _refuse(f"{value!r} is not an E.164 number")
        return value
    from trunx.models import Agent

    if not Agent.select().where(Agent.id == value, Agent.account == account_id).exists():
        raise _refuse(f"no agent {value!r} in this account (an E.164 number starts "
                            "with +)")
    return value


def as_target(stored: str | None) -> dict | None:
    """The published form of a stored value: {"to": number} or {"agent": id}."""
    if not stored:
        return None
    return {"to": stored} if stored.startswith("+") else {"agent": stored}


def publish(redis, account_id: str, stored: str | None) -> None:
    key = redis_schema.default_transfer_key(account_id)
    target = as_target(stored)
    if target is None:
        redis.delete(key)
    else:
        redis.set(key, redis_schema.dumps(target))


def parse(raw) -> dict | None:
    """What the engine read from Redis, as {"to"} / {"agent"}; None if unset or unreadable."""
    if not raw:
        return None
    try:
        target = json.loads(raw)
    except ValueError:
        return None
    if isinstance(target, dict) and (isinstance(target.get("to"), str)
                                     or isinstance(target.get("agent"), str)):
        return target
    return None


def resync(redis) -> int:
    """Every account's key from its row (a cleared default drops a stale key). Returns how
    many accounts have one."""
    from trunx.models import Account

    count = 0
    for account_id, stored in Account.select(Account.id, Account.default_transfer).tuples():
        publish(redis, account_id, stored)
        count += bool(stored)
    return count
