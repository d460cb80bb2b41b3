"""The meter's unit of work: plain SQL with named parameters in one write transaction.

Metering runs on every model call, so its statements skip the ORM: on the embedded database a
:class:`DbapiTx` drives the writer's DB-API cursor directly (``BEGIN IMMEDIATE`` … ``COMMIT``,
see :meth:`Database.write_dbapi`), where a Session would cost several times SQLite's own work
per statement. The same SQL runs through a :class:`SessionTx` on an external database and when
the caller already holds a write transaction (a license import granting its credits joins it).
Both take ``:name`` parameters; times go through :meth:`Tx.time` so they are stored exactly as
the ORM stores them (and compare as such).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from appliance.identity.models import UtcDateTime
from appliance.store.database import Database

Params = Mapping[str, Any]


class Tx(Protocol):
    """One open write (or read) transaction."""

    def one(self, sql: str, params: Params | None = None) -> Sequence[Any] | None:
        """The first row of a query, or None."""

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        """Every row of a query."""

    def run(self, sql: str, params: Params | None = None) -> int:
        """Execute a statement; the number of rows it changed."""

    def time(self, moment: datetime) -> Any:
        """``moment`` as the database stores a ``UtcDateTime``."""


@lru_cache(maxsize=8)
def _time_binder(dialect: Dialect) -> Callable[[Any], Any]:
    """What the ORM would bind for a ``UtcDateTime`` on ``dialect`` (on SQLite: the text
    ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC)."""
    column_type = UtcDateTime()
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return lambda value: column_type.process_bind_param(value, dialect)
    return process


def sqlite_time(moment: datetime) -> str:
    """What SQLAlchemy stores for a ``UtcDateTime`` on SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``,
    UTC; a naive time is taken as UTC), without its per-value dict formatting."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


class DbapiTx:
    """SQL on a DB-API cursor (the embedded database's writer)."""

    __slots__ = ("_cur",)

    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    def time(self, moment: datetime) -> str:
        return sqlite_time(moment)

    def one(self, sql: str, params: Params | None = None) -> Sequence[Any] | None:
        cur = self._cur
        cur.execute(sql, params or {})
        row: Sequence[Any] | None = cur.fetchone()
        return row

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        cur = self._cur
        cur.execute(sql, params or {})
        return list(cur.fetchall())

    def run(self, sql: str, params: Params | None = None) -> int:
        cur = self._cur
        cur.execute(sql, params or {})
        return int(cur.rowcount)


@lru_cache(maxsize=256)
def _text(sql: str) -> TextClause:
    return text(sql)


class SessionTx:
    """SQL through a Session (an external database, or joining the caller's transaction);
    pending ORM objects are flushed first, as with any session query."""

    __slots__ = ("_session", "time")

    def __init__(self, session: Session) -> None:
        self._session = session
        self.time: Callable[[datetime], Any] = _time_binder(session.get_bind().dialect)

    def one(self, sql: str, params: Params | None = None) -> Sequence[Any] | None:
        return self._session.execute(_text(sql), dict(params or {})).first()

    def all(self, sql: str, params: Params | None = None) -> list[Sequence[Any]]:
        return list(self._session.execute(_text(sql), dict(params or {})).all())

    def run(self, sql: str, params: Params | None = None) -> int:
        result = self._session.execute(_text(sql), dict(params or {}))
        return int(getattr(result, "rowcount", 0) or 0)


def as_tx(unit: Session | Tx) -> Tx:
    """``unit`` as a :class:`Tx` (a Session is wrapped)."""
    return SessionTx(unit) if isinstance(unit, Session) else unit


@contextmanager
def write_tx(db: Database) -> Iterator[Tx]:
    """One write transaction as a :class:`Tx`: the raw writer on the embedded database, else
    (or when this thread already holds one, which it joins) a session."""
    if db.is_sqlite and not db.in_write():
        with db.write_dbapi() as cursor:
            yield DbapiTx(cursor)
        return
    with db.write() as session:
        yield SessionTx(session)


def in_clause(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``(:name0, :name1, …)`` and its parameters, for ``IN`` with a list (the placeholders are
    generated names; the values are always bound)."""
    params = {f"{name}{i}": value for i, value in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")", params
