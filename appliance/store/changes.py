"""Which tables a committed write transaction changed, for in-process caches to invalidate.

:class:`CommitFeed` listens on the writer's ORM sessions: ``after_flush`` notes the tables of new,
changed and deleted objects, ``do_orm_execute`` the target table of ``update()``/``delete()``
statements, and ``after_commit`` hands the set to every subscriber (a rollback forgets it).
Subscribers run on the committing thread after the data is visible to new readers, so a cache
that records the feed's generation *before* it reads can never keep a pre-commit value under a
post-commit generation.

Writes made outside :meth:`Database.write` (raw connections, another process) are not seen; the
caches that subscribe bound their lifetime for that reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

Subscriber = Callable[[frozenset[str]], None]
_PENDING = "enclave.changed_tables"


class CommitFeed:
    """Publishes the set of table names each committed write transaction touched."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def attach(self, sessions: sessionmaker[Session]) -> None:
        """Listen on every session ``sessions`` makes."""
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "do_orm_execute", self._on_execute)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._forget)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(tables)`` after each commit that changed at least one table."""
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    @staticmethod
    def _pending(session: Session) -> set[str]:
        pending: set[str] = session.info.setdefault(_PENDING, set())
        return pending

    def _after_flush(self, session: Session, _context: Any) -> None:
        pending = self._pending(session)
        for obj in (*session.new, *session.dirty, *session.deleted):
            table = getattr(obj, "__tablename__", None)
            if table:
                pending.add(str(table))

    def _on_execute(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete or state.is_insert):
            return
        mapper = state.bind_mapper
        table = (
            mapper.local_table if mapper is not None else getattr(state.statement, "table", None)
        )
        name = getattr(table, "name", None)
        if name:
            self._pending(state.session).add(str(name))

    def _after_commit(self, session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        if not pending:
            return
        tables = frozenset(pending)
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(tables)

    @staticmethod
    def _forget(session: Session) -> None:
        session.info.pop(_PENDING, None)
