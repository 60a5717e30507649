"""A Store for tests that call the services directly, beside an app or an engine."""
from __future__ import annotations

from trunx import models
from trunx.store import Store


def store_on(redis) -> Store:
    """A Store over the database the models are bound to now (the test's `db.connect` or
    its app's), with `redis` (the test's client, or a gated or dead one). Its writer lock
    excludes the app's too: both flock the same file."""
    return Store(models.proxy.obj, redis)
