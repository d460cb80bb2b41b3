"""Group commit: concurrent metering writes share one write transaction.

SQLite has one writer, and on a small machine the fixed cost of a write transaction (session,
``BEGIN IMMEDIATE``, commit) dominates a reservation. Callers queue their operation; the first
caller becomes the leader and runs every queued operation in one transaction (each sees the
ledger tail the previous one appended), commits, and hands the results back. An operation that
raises makes the leader roll the batch back and run each operation of it in a transaction of its
own, so every caller still gets exactly its own outcome. A lone caller pays nothing extra.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.orm import Session

from appliance.store.database import Database

T = TypeVar("T")
MAX_BATCH = 64


class _Op(Generic[T]):
    __slots__ = ("done", "error", "fn", "lead", "value")

    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.lead = False  # set when this waiting caller is promoted to lead the next batch
        self.value: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Run write operations on ``db``, batching concurrent ones into one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._queue: list[_Op[Any]] = []
        self._leading = False
        self._wake = threading.Condition(self._lock)

    def run(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` inside a write transaction (possibly shared); its result or error.
        ``fn`` may run twice (batch rolled back, then alone): it must only touch the session.

        A caller already inside a write transaction joins it and is not batched: others' work
        must never ride on a transaction its owner may still roll back."""
        if getattr(getattr(self.db, "_unit", None), "session", None) is not None:
            with self.db.write() as session:
                return fn(session)
        op: _Op[T] = _Op(fn)
        with self._lock:
            self._queue.append(op)
            if self._leading:
                while not (op.done.is_set() or op.lead):
                    self._wake.wait()
            else:
                self._leading = op.lead = True
        if not op.done.is_set():
            self._lead()
        if op.error is not None:
            raise op.error
        return cast(T, op.value)

    def _lead(self) -> None:
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
                    op.done.set()
                if self._queue:
                    self._queue[0].lead = True  # the next waiter leads the next batch
                else:
                    self._leading = False
                self._wake.notify_all()

    def _execute(self, batch: list[_Op[Any]]) -> None:
        if len(batch) > 1:
            try:
                with self.db.write() as session:
                    for op in batch:
                        op.value = op.fn(session)
                return
            except Exception:  # one operation (or the commit) failed: each on its own
                for op in batch:
                    op.value = None
        for op in batch:
            try:
                with self.db.write() as session:
                    op.value = op.fn(session)
            except BaseException as exc:
                op.error = exc
