"""The one way to the database: SQLAlchemy 2 over SQLCipher (or PostgreSQL by URL).

SQLite has one writer; we make that explicit (as datasette does): every write goes through
:meth:`Database.write`, which serialises writers in this process with a lock and takes SQLite's
write lock up front (``BEGIN IMMEDIATE``), so a burst of writers queues instead of failing with
"database is locked". Readers use a separate pool and never block on the writer (WAL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlcipher3.dbapi2 as sqlcipher
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from appliance.errors import DatabaseCorrupt, DiskFull, StorageError
from appliance.keys.secret import DataKey
from appliance.store.changes import CommitFeed

T = TypeVar("T")
RAW_CLOSE_WAIT_S = 30.0  # how long dispose() waits for a raw write in flight


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _configure(dbapi_conn: Any, pragma_key: str, busy_timeout_ms: int) -> None:
    """Key a new SQLCipher connection and set what every connection of ours runs with."""
    # Take transaction control from the driver so BEGIN is ours (SQLAlchemy's recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        # PRAGMA takes no bound parameters; the literal is hex of our own key bytes.
        cur.execute(f'PRAGMA key = "{pragma_key}"')
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


def _sqlcipher_engine(path: Path, dek: DataKey, busy_timeout_ms: int, immediate: bool) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        module=sqlcipher,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # One pooled connection for the writer: the lock hands it from writer to writer.
        **({"pool_size": 1, "max_overflow": 0} if immediate else {}),
    )
    pragma_key = dek.sqlcipher_pragma_value()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        _configure(dbapi_conn, pragma_key, busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Reader pool + a serialised writer over one database."""

    def __init__(
        self,
        *,
        path: Path | None = None,
        dek: DataKey | None = None,
        url: str | None = None,
        busy_timeout_ms: int = 10000,
    ) -> None:
        self._write_lock = threading.Lock()
        self._unit = threading.local()  # the write session open on this thread, if any
        self.path = path
        if url and not _is_sqlite(url):
            self.url = url
            self.reader = create_engine(url, pool_pre_ping=True)
            self.writer = self.reader
        else:
            if path is None or dek is None:
                raise ValueError("an embedded database needs a path and a data key")
            self.url = f"sqlite:///{path}"
            self.reader = _sqlcipher_engine(path, dek, busy_timeout_ms, immediate=False)
            self.writer = _sqlcipher_engine(path, dek, busy_timeout_ms, immediate=True)
            self._raw_args = (str(path), dek.sqlcipher_pragma_value(), busy_timeout_ms)
        self._raw: Any = None  # the raw writer's connection (write_dbapi), opened on first use
        self._read_sessions = sessionmaker(self.reader, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.writer, expire_on_commit=False)
        # Which tables each committed write changed (caches such as credentials subscribe).
        self.commits = CommitFeed()
        self.commits.attach(self._write_sessions)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLCipher database (the dialect seam for SQLite-only SQL)."""
        return _is_sqlite(self.url)

    def verify_key(self) -> None:
        """Prove the key opens the file (SQLCipher only notices at the first read)."""
        try:
            with self.reader.connect() as conn:
                conn.execute(
                    text("SELECT count(*) FROM sqlite_master" if self.is_sqlite else "SELECT 1")
                )
        except DatabaseError as exc:
            raise DatabaseCorrupt(
                "The database cannot be opened with this key (wrong key or damaged file)."
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; closing it ends the transaction (loaded objects stay usable)."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """The one write path: serialised, committed on success, rolled back on error.

        Nested use on the same thread joins the outer transaction (one unit of work: e.g. an
        action and its audit entry commit together or not at all); the inner block flushes on
        exit, so constraint errors still surface where they were caused.
        """
        outer: Session | None = getattr(self._unit, "session", None)
        if outer is not None:
            yield outer
            outer.flush()
            return
        if getattr(self._unit, "raw", False):  # the lock is held by this thread: fail, not hang
            raise RuntimeError("write() inside write_dbapi(): use the open cursor instead")
        with self._write_lock, self._write_sessions() as session:
            self._unit.session = session
            try:
                with session.begin():
                    yield session
            except OperationalError as exc:
                raise _map_operational(exc) from exc
            finally:
                self._unit.session = None

    def in_write(self) -> bool:
        """Whether this thread holds a write transaction (a nested :meth:`write` joins it)."""
        return getattr(self._unit, "session", None) is not None

    @contextmanager
    def write_dbapi(self) -> Iterator[Any]:
        """A DB-API cursor inside one ``BEGIN IMMEDIATE`` transaction, without a Session: for
        hot paths (the credit meter), where SQLAlchemy's per-statement work costs several
        times what SQLite does. Embedded SQLite only; serialised with :meth:`write` by the same
        lock, committed on success, rolled back on error. Not for use inside :meth:`write` on
        the same thread (join that transaction through its session instead). Like every write
        outside :meth:`write`, it is not reported to :attr:`commits`: the caller owns any cache
        over the tables it writes.

        It runs on a connection of its own, not the writer pool's: the driver keeps each
        connection's prepared statements in a cache that favours the most used ones and
        evicts the newest when full, so on the pool's connection (hundreds of statements seen
        since start-up) the few hot statements here evicted each other and were compiled
        again on every call. Here they stay prepared.
        """
        if not self.is_sqlite:
            raise StorageError("Raw write transactions are for the embedded database only.")
        if self.in_write() or getattr(self._unit, "raw", False):
            raise RuntimeError("write_dbapi() inside a write on this thread: use the open one")
        with self._write_lock:
            self._unit.raw = True
            try:
                conn = self._raw if self._raw is not None else self._open_raw()
                cur = conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        yield cur
                        # The connection's commit(), not an executed "COMMIT": after one, the
                        # driver compiles the transaction's statements again the next time.
                        conn.commit()
                    except BaseException:
                        if conn.in_transaction:
                            self._rollback_raw(conn)
                        raise
                finally:
                    cur.close()
            except sqlcipher.OperationalError as exc:
                raise _map_message(str(exc)) from exc
            finally:
                self._unit.raw = False

    def _open_raw(self) -> Any:
        path, pragma_key, busy_timeout_ms = self._raw_args
        conn = sqlcipher.connect(path, check_same_thread=False, timeout=busy_timeout_ms / 1000)
        try:
            _configure(conn, pragma_key, busy_timeout_ms)
        except BaseException:
            conn.close()
            raise
        self._raw = conn
        return conn

    def _rollback_raw(self, conn: Any) -> None:
        """Roll back; a connection that cannot is closed (the next call opens a new one)."""
        try:
            conn.rollback()
        except sqlcipher.Error:
            self._close_raw()

    def _close_raw(self) -> None:
        conn, self._raw = self._raw, None
        if conn is not None:
            conn.close()

    def run_write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one write transaction and return its result."""
        with self.write() as session:
            return fn(session)

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` rows; ``["ok"]`` when healthy (PostgreSQL: always ok)."""
        if not self.is_sqlite:
            return ["ok"]
        # On a connection that was open while another connection wrote an FTS5 table, SQLite's
        # FTS5 check reports a false "checksum mismatch": check on a fresh connection (the
        # reader pool is rebuilt; connections in use are closed when they come back).
        self.reader.dispose()
        try:
            with self.reader.connect() as conn:
                return [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
        except DatabaseError as exc:
            return [f"unreadable: {exc.orig}"]

    def backup_to(self, target: Path, dek: DataKey) -> None:
        """Online backup (SQLite backup API) into ``target``, encrypted with ``dek``."""
        if not self.is_sqlite:
            raise StorageError("Online backup of an external database is done with its own tools.")
        target.unlink(missing_ok=True)
        with self._write_lock:
            raw_source = self.writer.raw_connection()
            try:
                dest = sqlcipher.connect(str(target))
                try:
                    dest.execute(f'PRAGMA key = "{dek.sqlcipher_pragma_value()}"')
                    raw_source.driver_connection.backup(dest)  # type: ignore[union-attr]
                finally:
                    dest.close()
            except sqlcipher.OperationalError as exc:
                target.unlink(missing_ok=True)
                raise StorageError(f"Backup failed: {exc}.") from exc
            finally:
                raw_source.close()
        target.chmod(0o600)

    def rekey(self, new: DataKey) -> None:
        """Re-encrypt the whole database file under ``new`` (SQLCipher ``PRAGMA rekey``)."""
        with self._write_lock:
            self.reader.dispose()
            self._close_raw()  # keyed with the old key
            raw = self.writer.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cur.execute(f'PRAGMA rekey = "{new.sqlcipher_pragma_value()}"')
                cur.close()
            finally:
                raw.close()
            path, _, busy_timeout_ms = self._raw_args
            self._raw_args = (path, new.sqlcipher_pragma_value(), busy_timeout_ms)
        self.dispose()

    def dispose(self) -> None:
        """Close every connection (the pools' and the raw writer's). A raw transaction in flight
        on another thread finishes first (the pools likewise close a connection in use only
        when it comes back)."""
        self.reader.dispose()
        self.writer.dispose()
        locked = self._write_lock.acquire(timeout=RAW_CLOSE_WAIT_S)
        try:
            self._close_raw()
        finally:
            if locked:
                self._write_lock.release()


def _map_operational(exc: OperationalError) -> StorageError:
    return _map_message(str(exc.orig))


def _map_message(reason: str) -> StorageError:
    if "full" in reason.lower():
        return DiskFull()
    return StorageError(f"Database write failed: {reason}.")
