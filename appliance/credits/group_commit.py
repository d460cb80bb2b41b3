"""Group commit: concurrent metering writes share one write transaction.

SQLite has one writer, and on a small machine the fixed cost of a write transaction
(``BEGIN IMMEDIATE``, the commit: every changed page encrypted and written to the WAL) is the
largest part of a reservation. Callers queue their operation; the first caller becomes the
leader and runs every queued operation in one transaction (each sees the ledger tail the
previous one appended), commits, and hands the results back. An operation that raises makes the
leader roll the batch back and run each operation of it in a transaction of its own, so every
caller still gets exactly its own outcome. A lone caller pays nothing extra.

Each waiting caller sleeps on its own gate (a lock), woken exactly once when its operation is
done or when it is promoted to lead the next batch: no thundering herd of 16 threads competing
for the GIL after every commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from appliance.credits.tx import Tx, write_tx
from appliance.store.database import Database

T = TypeVar("T")
MAX_BATCH = 64


class _Op(Generic[T]):
    __slots__ = ("_gate", "done", "error", "fn", "lead", "value")

    def __init__(self, fn: Callable[[Tx], T]) -> None:
        self.fn = fn
        self.done = False  # set under the group's lock before the gate opens
        self.lead = False  # set when this waiting caller is promoted to lead the next batch
        self.value: T | None = None
        self.error: BaseException | None = None
        self._gate = threading.Lock()
        self._gate.acquire()  # closed: wait() blocks until open()

    def wait(self) -> None:
        self._gate.acquire()

    def open(self) -> None:
        self._gate.release()


class GroupCommit:
    """Run write operations on ``db``, batching concurrent ones into one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._queue: list[_Op[Any]] = []
        self._leading = False

    def run(self, fn: Callable[[Tx], T]) -> T:
        """``fn(tx)`` inside a write transaction (possibly shared); its result or error.
        ``fn`` may run twice (batch rolled back, then alone): it must only touch the database.

        A caller already inside a write transaction joins it and is not batched: others' work
        must never ride on a transaction its owner may still roll back."""
        if self.db.in_write():
            with write_tx(self.db) as tx:
                return fn(tx)
        op: _Op[T] = _Op(fn)
        with self._lock:
            self._queue.append(op)
            follower = self._leading
            if not follower:
                self._leading = op.lead = True
        if follower:
            op.wait()  # opened once: done, or promoted to lead
        if not op.done:
            self._lead(op)
        if op.error is not None:
            raise op.error
        return cast(T, op.value)

    def _lead(self, leader: _Op[Any]) -> None:
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._execute(batch)
        except BaseException as exc:
            for op in batch:
                op.error = op.error or exc
            raise
        finally:
            with self._lock:
                for op in batch:
                    op.done = True
                following = self._queue[0] if self._queue else None
                if following is not None:
                    following.lead = True  # the next waiter leads the next batch
                else:
                    self._leading = False
            for op in batch:
                if op is not leader:
                    op.open()
            if following is not None:
                following.open()

    def _execute(self, batch: list[_Op[Any]]) -> None:
        if len(batch) > 1:
            try:
                with write_tx(self.db) as tx:
                    for op in batch:
                        op.value = op.fn(tx)
                return
            except Exception:  # one operation (or the commit) failed: each on its own
                for op in batch:
                    op.value = None
        for op in batch:
            try:
                with write_tx(self.db) as tx:
                    op.value = op.fn(tx)
            except BaseException as exc:
                op.error = exc
