"""The engine's end of the record writer (record_writer.py, a child process it owns).

`await sink.save(rows)` hands a batch of Call rows (dicts: the child encodes them) to the
child over a private socketpair and returns once the child says the batch is COMMITTED, or raises
RecordWriteError with the child's reason (the transaction was rolled back): the same
contract as `save_rows` on the database thread, so the engine's start row before ANSWER,
its per-row retry and the webhook waiting for the final row work as they did.

The child dying (EOF on the socket) is noticed at once: a new one is started and every
batch not acknowledged yet is sent again, in order (save_rows is an upsert, and replaces
a call's visit rows, so a batch written twice is stored once). While there is no child,
batches queue here. A batch whose child died under it MAX_TRIES times (or whose child
could not be started) fails with RecordWriteError, so a row that kills the writer, or a
database the writer cannot open, costs the engine's per-row retry, not a loop forever.
`stop` returns once every batch is answered and the child has exited.
"""
from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import subprocess
import sys

from agi_server.calls.record_writer import HEADER, frame
from trunx.errors import Internal

log = logging.getLogger(__name__)

MAX_TRIES = 3          # children that may die under one batch before it fails
READY_WAIT = 30.0      # seconds a new child may take to open the database
RESTART_MAX = 2.0      # seconds between attempts to start a child, at most
EXIT_WAIT = 10.0       # seconds a child may take to finish after the engine's end closed


class RecordWriteError(Internal):
    """A batch of call rows the record writer did not commit."""

    def __init__(self, message: str):
        super().__init__("record-write-failed", message)


class _Batch:
    __slots__ = ("seq", "frame", "done", "tries")

    def __init__(self, seq: int, frame: bytes, done: asyncio.Future):
        self.seq, self.frame, self.done, self.tries = seq, frame, done, 0


class _Link(asyncio.Protocol):
    """One child's socket: frames in, each an answer (seq, error)."""

    def __init__(self, sink: RecordSink):
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ready = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer)
            end = HEADER.size + size
            if len(buffer) < end:
                break
            seq, error = pickle.loads(buffer[HEADER.size:end])
            del buffer[:end]
            if seq == 0:
                if not self.ready.done():
                    self.ready.set_result(None)
            else:
                self.sink._answered(seq, error)

    def connection_lost(self, exc) -> None:
        self.lost.set()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("the record writer exited"))

    def send(self, batch: _Batch) -> None:
        batch.tries += 1
        self.transport.write(batch.frame)


class RecordSink:
    def __init__(self, config, *, module: str = "agi_server.calls.record_writer"):
        self.config = config
        self.module = module
        self._pending: dict[int, _Batch] = {}     # seq -> batch not answered, in order
        self._seq = 0
        self._link: _Link | None = None           # the child's, once it is ready
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task | None = None
        self._closing = False
        self.restarts = 0          # attempts to start a child after the first one
        self.batches = 0           # batches committed

    @property
    def pid(self) -> int | None:
        """The running child's process id (the bench reads its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def unanswered(self) -> int:
        """Batches handed over and not answered yet (queued, or in the child's hands)."""
        return len(self._pending)

    async def start(self) -> None:
        """The first child, ready: an engine that cannot start its writer does not start."""
        link = await self._spawn()
        self._watch = asyncio.create_task(self._supervise(link), name="record-writer")

    async def save(self, rows: list) -> None:
        """Blocks until the child committed `rows` (row dicts or column values)."""
        self._seq += 1
        try:       # a value pickle cannot carry fails its batch here, not in the child
            data = frame((self._seq, rows))
        except Exception as exc:
            raise RecordWriteError(f"rows not encoded for the writer: {exc}") from exc
        batch = _Batch(self._seq, data, asyncio.get_running_loop().create_future())
        self._pending[batch.seq] = batch
        if self._link is not None:
            self._link.send(batch)
        error = await asyncio.shield(batch.done)
        if error is not None:
            raise RecordWriteError(error)

    def _answered(self, seq: int, error: str | None) -> None:
        batch = self._pending.pop(seq, None)
        if batch is None:
            return
        self.batches += error is None
        if not batch.done.done():
            batch.done.set_result(error)

    async def stop(self) -> None:
        """Every batch answered, then the child told to finish (its end of the socket sees
        EOF) and waited for."""
        while self._pending:
            await asyncio.gather(*[asyncio.shield(b.done) for b in self._pending.values()],
                                 return_exceptions=True)
        self._closing = True
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()
        if self._watch is not None:
            await asyncio.gather(self._watch, return_exceptions=True)
        await self._reap()

    async def _spawn(self) -> _Link:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, str(theirs.fileno()),
                # stdout is not its to write (a supervisor may read the engine's);
                # it logs to the engine's stderr
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        _, link = await loop.create_unix_connection(lambda: _Link(self), sock=ours)
        level = logging.getLogger().getEffectiveLevel()
        link.transport.write(frame((self.config, level)))
        try:
            await asyncio.wait_for(asyncio.shield(link.ready), READY_WAIT)
        except BaseException:
            link.transport.close()
            await self._reap(kill=True)
            raise
        self._link = link
        for batch in list(self._pending.values()):     # queued, or the last child's
            link.send(batch)
        return link

    async def _supervise(self, link: _Link) -> None:
        """Start a new child whenever the last one dies, for as long as the engine runs."""
        delay = 0.05
        while True:
            await link.lost.wait()
            self._link = None
            if self._closing:
                return
            code = await self._reap()
            log.error("record writer (pid %s) exited with %s; %d batches to send again",
                      self._proc.pid if self._proc else None, code, len(self._pending))
            self._give_up(f"the record writer exited ({code}) while writing this batch")
            while True:
                try:
                    self.restarts += 1
                    link = await self._spawn()
                    if self._closing:          # stopped while it started: it ends too
                        link.transport.close()
                    break
                except Exception as exc:
                    if self._closing:
                        return
                    log.error("record writer not started: %s", exc)
                    for batch in self._pending.values():
                        batch.tries += 1        # a start that fails counts as a death
                    self._give_up(f"the record writer could not be started: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESTART_MAX)
            delay = 0.05

    def _give_up(self, why: str) -> None:
        for batch in [b for b in self._pending.values() if b.tries >= MAX_TRIES]:
            self._answered(batch.seq, why)

    async def _reap(self, kill: bool = False) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if kill and proc.returncode is None:
            proc.kill()
        try:
            return await asyncio.wait_for(proc.wait(), EXIT_WAIT)
        except TimeoutError:
            log.error("record writer (pid %s) did not exit; killed", proc.pid)
            proc.kill()
            return await proc.wait()
