"""Storage benchmark: what encryption at rest costs Enclave.

Run ``.venv/bin/python bench/store.py`` (``--quick`` for small sizes). It prints two tables;
every number is the best of 3 runs, and nothing is asserted (the aim is ratios >= 0.8).

(a) Rows, all with WAL and ``synchronous = NORMAL`` (plus the same busy timeout and foreign
    keys as :class:`Database`), each run on a fresh file:

    * ``sqlite3``: plain stdlib sqlite3, raw DB-API (the baseline);
    * ``sqlcipher3``: the same raw DB-API calls on a SQLCipher file keyed as Database keys it,
      so sqlcipher3/sqlite3 is the cost of the encryption alone;
    * ``Database``: :class:`appliance.store.database.Database` (SQLAlchemy sessions, serialised
      writer with ``BEGIN IMMEDIATE``), so Database/sqlite3 is what the app pays in all.

    Measured: inserts in transactions of 100 rows, inserts of one row per transaction, and
    point selects by random primary key (one read transaction), all in rows/s.

(b) Blobs: :meth:`BlobStore.put` (read, encrypt, write, fsync) and :meth:`BlobStore.open`
    streamed into a file that is then fsynced (read, decrypt, write, fsync), in MB/s, against
    ``shutil.copyfile`` of the same file followed by an fsync.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlcipher3.dbapi2 as sqlcipher

from appliance.keys.secret import DataKey
from appliance.store.blobs import BlobStore, key_id_for
from appliance.store.database import Database

RUNS = 3
MB = 1 << 20
DDL = "CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB NOT NULL)"
INSERT = "INSERT INTO bench (id, name, payload) VALUES (?, ?, ?)"
SELECT = "SELECT name, payload FROM bench WHERE id = ?"
PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)
TABLE = sa.Table(
    "bench",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)
Row = tuple[int, str, bytes]
Step = Callable[["Raw | Orm"], None]


class Raw:
    """Raw DB-API on stdlib sqlite3 or (with a key) sqlcipher3, transactions by hand."""

    def __init__(self, path: Path, dek: DataKey | None) -> None:
        module: Any = sqlcipher if dek else sqlite3
        self.conn = module.connect(str(path), isolation_level=None)
        if dek:
            self.conn.execute(f'PRAGMA key = "{dek.sqlcipher_pragma_value()}"')
        for pragma in PRAGMAS:
            self.conn.execute(pragma).fetchall()
        self.conn.execute(DDL)

    def insert(self, rows: list[Row], per_txn: int) -> None:
        for i in range(0, len(rows), per_txn):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(INSERT, rows[i : i + per_txn])
            self.conn.execute("COMMIT")

    def select(self, ids: list[int]) -> None:
        self.conn.execute("BEGIN")
        for i in ids:
            assert self.conn.execute(SELECT, (i,)).fetchone() is not None
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class Orm:
    """The app's own path: Database.write() / Database.read() sessions with SQLAlchemy Core."""

    stmt = sa.select(TABLE.c.name, TABLE.c.payload).where(TABLE.c.id == sa.bindparam("id"))

    def __init__(self, path: Path, dek: DataKey | None) -> None:
        self.db = Database(path=path, dek=dek or DataKey.generate())
        with self.db.write() as session:
            session.execute(sa.text(DDL))

    def insert(self, rows: list[Row], per_txn: int) -> None:
        dicts = [{"id": i, "name": n, "payload": p} for i, n, p in rows]
        for i in range(0, len(dicts), per_txn):
            with self.db.write() as session:
                session.execute(TABLE.insert(), dicts[i : i + per_txn])

    def select(self, ids: list[int]) -> None:
        with self.db.read() as session:
            for i in ids:
                session.execute(self.stmt, {"id": i}).one()

    def close(self) -> None:
        self.db.dispose()


def best(once: Callable[[], float]) -> float:
    """The best (shortest) of RUNS timings; ``once`` returns the seconds of its timed part."""
    return min(once() for _ in range(RUNS))


def time_rows(
    work: Path, cls: type[Raw | Orm], dek: DataKey | None, setup: list[Row], step: Step
) -> float:
    def once() -> float:
        path = work / f"bench-{time.monotonic_ns()}.db"
        store = cls(path, dek)
        try:
            if setup:
                store.insert(setup, 1000)  # data for the selects; not timed
            start = time.perf_counter()
            step(store)
            return time.perf_counter() - start
        finally:
            store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    return best(once)


def bench_rows(work: Path, n_rows: int, n_single: int, n_select: int) -> None:
    rng = random.Random(1)
    rows = [(i, f"row-{i:08d}", rng.randbytes(200)) for i in range(1, n_rows + 1)]
    ids = [rng.randint(1, n_rows) for _ in range(n_select)]
    dek = DataKey.generate()
    kinds: dict[str, tuple[type[Raw | Orm], DataKey | None]] = {
        "sqlite3": (Raw, None),
        "sqlcipher3": (Raw, dek),
        "Database": (Orm, dek),
    }
    steps: dict[str, tuple[int, list[Row], Step]] = {
        "insert, 100 rows/txn": (n_rows, [], lambda s: s.insert(rows, 100)),
        "insert, 1 row/txn": (n_single, [], lambda s: s.insert(rows[:n_single], 1)),
        "select by id": (n_select, rows, lambda s: s.select(ids)),
    }
    rate = {
        (kind, label): count / time_rows(work, cls, key, setup, step)
        for kind, (cls, key) in kinds.items()
        for label, (count, setup, step) in steps.items()
    }
    probe = sqlcipher.connect(":memory:")
    cipher = probe.execute("PRAGMA cipher_version").fetchone()[0]
    probe.close()
    print(f"Rows: rows/s, best of {RUNS}; WAL, synchronous=NORMAL; {n_rows:,} rows of ~220 bytes")
    print(
        f"(stdlib sqlite3 links SQLite {sqlite3.sqlite_version}; sqlcipher3 bundles SQLite "
        f"{sqlcipher.sqlite_version} with SQLCipher {cipher})"
    )
    print(f"{'':<30}{'sqlite3':>11}{'sqlcipher3':>12}{'ratio':>7}{'Database':>11}{'ratio':>7}")
    for label, (count, _, _) in steps.items():
        base, enc, app = (rate[kind, label] for kind in kinds)
        print(
            f"{label + f' ({count:,})':<30}{base:>11,.0f}{enc:>12,.0f}{enc / base:>7.2f}"
            f"{app:>11,.0f}{app / base:>7.2f}"
        )


def fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def bench_blobs(work: Path, size: int) -> None:
    source, copy, out = work / "source.bin", work / "copy.bin", work / "decrypted.bin"
    with source.open("wb") as f:
        for _ in range(size // MB):
            f.write(os.urandom(MB))
    key = os.urandom(32)
    store = BlobStore(work / "blobs", {key_id_for(key): key}, key_id_for(key), os.urandom(32))

    def plain_copy() -> float:
        copy.unlink(missing_ok=True)
        start = time.perf_counter()
        shutil.copyfile(source, copy)
        fsync_file(copy)
        return time.perf_counter() - start

    blob_id = ""

    def put() -> float:
        nonlocal blob_id
        if blob_id:
            store.delete(blob_id)  # time the real write, not the deduplication
        start = time.perf_counter()
        with source.open("rb") as f:
            blob_id = store.put(f).blob_id
        return time.perf_counter() - start

    def read() -> float:
        start = time.perf_counter()
        with out.open("wb") as f:
            for chunk in store.open(blob_id):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        return time.perf_counter() - start

    base = size / MB / best(plain_copy)
    enc, dec = size / MB / best(put), size / MB / best(read)
    print(f"\nBlobs: MB/s, best of {RUNS}; one {size // MB} MB file, 1 MiB chunks")
    print(f"{'':<32}{'MB/s':>9}{'ratio':>7}")
    print(f"{'copyfile + fsync (baseline)':<32}{base:>9,.0f}{1:>7.2f}")
    print(f"{'BlobStore.put (encrypt)':<32}{enc:>9,.0f}{enc / base:>7.2f}")
    print(f"{'BlobStore.open (decrypt)':<32}{dec:>9,.0f}{dec / base:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    n_rows, n_single, n_select, blob_mb = (
        (2_000, 300, 2_000, 16) if args.quick else (20_000, 2_000, 20_000, 256)
    )
    with tempfile.TemporaryDirectory(prefix="enclave-bench-") as tmp:
        bench_rows(Path(tmp), n_rows, n_single, n_select)
        bench_blobs(Path(tmp), blob_mb * MB)
    print("\nratio = encrypted / plain throughput (aim: >= 0.80)")


if __name__ == "__main__":
    main()
