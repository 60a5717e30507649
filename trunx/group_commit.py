"""Group commit for IVR saves: the saves waiting at once in one process share one turn of
the writer lock, one transaction and one Redis round trip.

A save's turn holds the writer lock across its commit and its publish (trunx/ivr/store.py
says why: Redis must get the versions in the order they were committed). Held one save at
a time, the lock passed ~350 POST /ivr a second: each turn paid a BEGIN, a COMMIT, the
publish's round trip and the outbox mark, while 50 writers waited. Here the thread that
finds no turn under way leads one: it takes every save queued in its process (up to
MAX_BATCH), runs each in a savepoint of one transaction (a save that fails, e.g. an id
taken meanwhile, rolls back alone and gets its own error), commits once, publishes the
committed ones in commit order in one pipeline, marks their outbox entries done in one
UPDATE, and releases the lock. Then it hands the lead to the oldest save still queued and
returns. What each save stores and publishes is exactly what it would alone; a crash
between the commit and the publish leaves outbox entries, as before.

Other writers (deletes, DID changes) still take the writer lock alone: their order
against saves is the lock's, as before.

A group is made with `after_commit(results)`: what the turn does once its transaction has
committed, with the lock still held, for the writes that were stored (their results, in
commit order). If it raises, each of those writes gets that error (their rows stay, with
what they owe in the outbox); if it returns a list, an item that is an exception is that
write's error.
"""
from __future__ import annotations

import threading

MAX_BATCH = 32


class _Save:
    __slots__ = ("write", "result", "error", "wake", "lead")

    def __init__(self, write):
        self.write = write          # () -> its result: in the transaction
        self.result = None
        self.error: BaseException | None = None
        self.wake = threading.Event()
        self.lead = False


class GroupCommit:
    """One per Store (its database, writer lock and Redis client) and kind of write."""

    def __init__(self, store, after_commit, max_batch: int = MAX_BATCH, lock=None):
        self._store = store
        self._lock = lock or (lambda: store.writer)   # what a turn holds
        self._after_commit = after_commit
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Save] = []
        self._leading = False

    def save(self, write):
        """Run `write` in a turn of the writer lock; its result once committed and
        published, or its error."""
        job = _Save(write)
        with self._mutex:
            self._queue.append(job)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            job.wake.wait()
            if not job.lead:       # done by another thread's turn
                return _outcome(job)
        self._turn()
        return _outcome(job)

    def _turn(self) -> None:
        with self._mutex:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        try:
            self._commit(batch)
        finally:
            with self._mutex:
                if self._queue:             # the lead passes to the oldest waiting save
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake.set()
                else:
                    self._leading = False
            for job in batch:
                job.wake.set()

    def _commit(self, batch: list[_Save]) -> None:
        store = self._store
        try:
            with self._lock():
                with store.db.atomic():
                    for job in batch:
                        try:
                            with store.db.atomic():     # a savepoint: this save alone
                                job.result = job.write()
                        except Exception as exc:
                            job.error = exc
                            job.result = None
                stored = [job for job in batch if job.error is None]
                if not stored:
                    return
                # committed; what follows runs before the lock is released, in commit order
                try:
                    errors = self._after_commit([job.result for job in stored])
                except Exception as exc:
                    for job in stored:      # stored and owed: the outbox sweep completes them
                        job.error = exc
                    return
                for job, error in zip(stored, errors or (), strict=False):
                    if isinstance(error, BaseException):
                        job.error = error
        except BaseException as exc:
            for job in batch:
                if job.error is None:
                    job.error = exc
            if not isinstance(exc, Exception):
                raise


def _outcome(job: _Save):
    if job.error is not None:
        raise job.error
    return job.result
