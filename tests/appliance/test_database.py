"""Database on real SQLCipher files: serialised writes under load, rollback, keys, backup, rekey."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from appliance.errors import DatabaseCorrupt, StorageError
from appliance.keys.secret import DataKey
from appliance.store.database import Database

REPO = Path(__file__).resolve().parents[2]

# A test-only table on its own MetaData, so these tests do not depend on the app schema.
META = sa.MetaData()
ROWS = sa.Table(
    "test_rows",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("writer", sa.String(32), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.UniqueConstraint("writer", "n"),
)


def open_db(path: Path, dek: DataKey) -> Database:
    db = Database(path=path, dek=dek)
    with db.write() as session:
        META.create_all(session.connection())
    return db


def count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(ROWS)) or 0


def pairs(db: Database) -> set[tuple[str, int]]:
    with db.read() as session:
        return {(w, n) for w, n in session.execute(sa.select(ROWS.c.writer, ROWS.c.n))}


def insert(db: Database, writer: str, n: int) -> None:
    with db.write() as session:
        session.execute(ROWS.insert().values(writer=writer, n=n))


def stdlib_can_read(path: Path) -> bool:
    try:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


@pytest.fixture
def dek() -> DataKey:
    return DataKey.generate()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
def db(db_path: Path, dek: DataKey) -> Iterator[Database]:
    database = open_db(db_path, dek)
    yield database
    database.dispose()


# --- concurrency ----------------------------------------------------------------------------


def test_thread_burst_of_writers_with_concurrent_readers(db: Database) -> None:
    writers, per_writer = 16, 50
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 4)
    done = threading.Event()

    def write(i: int) -> None:
        try:
            start.wait()
            for n in range(per_writer):
                insert(db, f"t{i}", n)
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            start.wait()
            last = 0
            while not done.is_set():
                seen = count(db)
                assert seen >= last  # committed rows never disappear
                last = seen
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert count(db) == writers * per_writer
    assert pairs(db) == {(f"t{i}", n) for i in range(writers) for n in range(per_writer)}
    assert db.integrity_check() == ["ok"]


CHILD = """
import sys
from pathlib import Path
import sqlalchemy as sa
from appliance.keys.secret import DataKey
from appliance.store.database import Database

rows = sa.table("test_rows", sa.column("writer"), sa.column("n"))
db = Database(path=Path(sys.argv[1]), dek=DataKey(bytes.fromhex(sys.argv[2])))
name = sys.argv[3]
print("ready", flush=True)
sys.stdin.readline()  # wait for "go", so every process writes at the same time
for n in range(50):
    with db.write() as session:
        session.execute(sa.insert(rows).values(writer=name, n=n))
db.dispose()
print("done", flush=True)
"""


def test_process_burst_of_writers_on_one_file(db: Database, db_path: Path, dek: DataKey) -> None:
    # Separate processes share only the file: busy_timeout + BEGIN IMMEDIATE make them queue.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db_path), dek.raw.hex(), f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for i in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for n in range(50):  # this process writes at the same time, through its own Database
            insert(db, "parent", n)
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    expected = {(f"p{i}", n) for i in range(4) for n in range(50)}
    expected |= {("parent", n) for n in range(50)}
    assert pairs(db) == expected
    assert db.integrity_check() == ["ok"]


def test_readers_do_not_block_on_an_open_write(db: Database) -> None:
    insert(db, "a", 0)
    with db.write() as session:
        session.execute(ROWS.insert().values(writer="a", n=1))
        assert count(db) == 1  # a reader sees the last commit, without waiting
    assert count(db) == 2


# --- failed transactions --------------------------------------------------------------------


def test_exception_in_write_leaves_no_partial_rows(db: Database) -> None:
    insert(db, "keep", 0)
    with pytest.raises(RuntimeError, match="boom"), db.write() as session:
        session.execute(ROWS.insert(), [{"writer": "gone", "n": n} for n in range(10)])
        session.flush()
        raise RuntimeError("boom")
    assert pairs(db) == {("keep", 0)}
    insert(db, "keep", 1)  # the writer (lock and pooled connection) is free again
    assert count(db) == 2


def test_constraint_violation_rolls_back_the_whole_transaction(db: Database) -> None:
    with pytest.raises(IntegrityError), db.write() as session:
        session.execute(ROWS.insert().values(writer="x", n=1))
        session.execute(ROWS.insert().values(writer="x", n=1))
    assert count(db) == 0


def test_driver_error_in_write_is_a_storage_error_and_rolls_back(db: Database) -> None:
    with pytest.raises(StorageError, match="Database write failed"), db.write() as session:
        session.execute(ROWS.insert().values(writer="x", n=1))
        session.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))
    assert count(db) == 0
    assert db.run_write(lambda s: s.execute(ROWS.insert().values(writer="y", n=2)) and "ok") == "ok"
    assert pairs(db) == {("y", 2)}


# --- keys -----------------------------------------------------------------------------------


def test_wrong_key_is_refused_and_stdlib_sqlite_cannot_read(db: Database, db_path: Path) -> None:
    insert(db, "a", 1)
    db.dispose()
    wrong = Database(path=db_path, dek=DataKey.generate())
    try:
        with pytest.raises(DatabaseCorrupt):
            wrong.verify_key()
        assert wrong.integrity_check()[0].startswith("unreadable")
    finally:
        wrong.dispose()
    assert not db_path.read_bytes().startswith(b"SQLite format 3\x00")
    assert not stdlib_can_read(db_path)
    db.verify_key()  # the right key still opens it
    assert count(db) == 1
    with pytest.raises(ValueError, match="needs a path and a data key"):
        Database(path=db_path)


# --- backup and rekey -----------------------------------------------------------------------


def test_backup_opens_with_the_key_and_holds_the_rows(
    db: Database, dek: DataKey, tmp_path: Path
) -> None:
    for n in range(100):
        insert(db, "b", n)
    target = tmp_path / "backup.db"
    target.write_bytes(b"stale")  # an old file in the way is replaced
    db.backup_to(target, dek)
    assert target.stat().st_mode & 0o777 == 0o600
    assert not stdlib_can_read(target)
    copy = Database(path=target, dek=dek)
    try:
        copy.verify_key()
        assert copy.integrity_check() == ["ok"]
        assert pairs(copy) == {("b", n) for n in range(100)}
    finally:
        copy.dispose()
    insert(db, "b", 100)  # the source stays usable
    assert count(db) == 101


def test_backup_under_another_key(db: Database, dek: DataKey, tmp_path: Path) -> None:
    insert(db, "c", 1)
    other = DataKey.generate()
    target = tmp_path / "other.db"
    db.backup_to(target, other)
    with_old = Database(path=target, dek=dek)
    with_new = Database(path=target, dek=other)
    try:
        with pytest.raises(DatabaseCorrupt):
            with_old.verify_key()
        assert pairs(with_new) == {("c", 1)}
    finally:
        with_old.dispose()
        with_new.dispose()


def test_rekey_reencrypts_the_file(db: Database, db_path: Path, dek: DataKey) -> None:
    for n in range(200):  # some of these are still in the WAL when rekey starts
        insert(db, "r", n)
    new = DataKey.generate()
    db.rekey(new)
    old_db, new_db = Database(path=db_path, dek=dek), Database(path=db_path, dek=new)
    try:
        with pytest.raises(DatabaseCorrupt):
            old_db.verify_key()
        new_db.verify_key()
        assert new_db.integrity_check() == ["ok"]
        assert pairs(new_db) == {("r", n) for n in range(200)}
        insert(new_db, "r", 200)
        assert count(new_db) == 201
    finally:
        old_db.dispose()
        new_db.dispose()
    assert not stdlib_can_read(db_path)
