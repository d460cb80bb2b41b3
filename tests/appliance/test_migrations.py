"""Migrations: no drift from the models, no-op when current, backup + full restore on failure."""

from __future__ import annotations

import hashlib
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from appliance import Appliance
from appliance.errors import DatabaseCorrupt, MigrationFailed, SchemaTooNew
from appliance.keys.secret import DataKey
from appliance.knowledge.fts import is_fts_table
from appliance.store.all_models import Base, Blob, Installation
from appliance.store.database import Database
from appliance.store.migrate import (
    SCRIPT_LOCATION,
    current_revision,
    head_revision,
    is_current,
    migrate,
)

FILLER = sa.Table(
    "test_filler",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


HEAD = head_revision()
TEST_REVISION = "9999"


def with_test_revision(tmp_path: Path, upgrade_body: str) -> Path:
    """A copy of the real migrations plus a test revision after the head, whose upgrade() is
    ``upgrade_body``."""
    location = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    body = textwrap.indent(textwrap.dedent(upgrade_body).strip(), "    ")
    (location / "versions" / f"{TEST_REVISION}_test.py").write_text(
        '"""Test revision."""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "{TEST_REVISION}"\ndown_revision = "{HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    return location


FAILING_SQL = """
op.create_table("extra", sa.Column("id", sa.Integer, primary_key=True))
op.execute("INSERT INTO extra (id) VALUES (1)")
op.execute("UPDATE blob SET size = 0")
op.execute("THIS IS NOT SQL")
"""
FAILING_PYTHON = """
op.create_table("extra", sa.Column("id", sa.Integer, primary_key=True))
op.execute("UPDATE blob SET size = 0")
raise KeyError("a bug in the migration script")
"""
ADD_COLUMN = """
op.add_column("blob", sa.Column("note", sa.String(50), nullable=True))
"""


@pytest.fixture
def dek() -> DataKey:
    return DataKey.generate()


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    path = tmp_path / "backups"
    path.mkdir()
    return path


@pytest.fixture
def db(tmp_path: Path, dek: DataKey, backups: Path) -> Iterator[Database]:
    """A database at the head revision holding some rows."""
    database = Database(path=tmp_path / "enclave.db", dek=dek)
    migrate(database, dek, backups)
    with database.write() as session:
        session.add(Installation(id=1, installation_id="i-1", blob_address_key=b"k" * 32))
        session.add_all(
            Blob(id=f"{n:064x}", size=n + 1, media_type="text/plain") for n in range(20)
        )
    for path in backups.iterdir():  # start each test with an empty backups dir
        path.unlink()
    yield database
    database.dispose()


def blob_sizes(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {i: s for i, s in session.execute(sa.select(Blob.id, Blob.size))}


def table_names(db: Database) -> set[str]:
    with db.reader.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- schema drift ---------------------------------------------------------------------------


def test_migrated_schema_equals_the_models(appliance: Appliance) -> None:
    with appliance.db.reader.connect() as conn:
        # FTS5 virtual tables (and their shadow tables) live outside the SQLAlchemy models.
        opts = {"compare_type": True, "include_name": lambda name, *_: not is_fts_table(name)}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(appliance.db) == head_revision() == HEAD
    assert appliance.readiness()["checks"]["migrations"] is True


def test_migrate_on_a_current_database_does_nothing(appliance: Appliance) -> None:
    before = sorted(appliance.home.backups_dir.iterdir())
    assert migrate(appliance.db, appliance.current_key(), appliance.home.backups_dir) is None
    assert sorted(appliance.home.backups_dir.iterdir()) == before


def test_first_migration_backs_up_the_empty_database(tmp_path: Path, dek: DataKey) -> None:
    db = Database(path=tmp_path / "new.db", dek=dek)
    try:
        assert current_revision(db) is None
        backup = migrate(db, dek, tmp_path)
        assert backup is not None
        assert Path(backup).name.startswith(f"pre-migrate-empty-to-{HEAD}-")
        assert is_current(db)
    finally:
        db.dispose()


# --- a failing migration --------------------------------------------------------------------


@pytest.mark.parametrize("upgrade_body", [FAILING_SQL, FAILING_PYTHON], ids=["sql", "python"])
def test_failed_migration_restores_the_database(
    db: Database, dek: DataKey, backups: Path, tmp_path: Path, upgrade_body: str
) -> None:
    location = with_test_revision(tmp_path, upgrade_body)
    assert head_revision(location) == TEST_REVISION
    sizes = blob_sizes(db)

    with pytest.raises(MigrationFailed, match=f"from {HEAD} to {TEST_REVISION}"):
        migrate(db, dek, backups, script_location=location)

    made = sorted(backups.iterdir())
    assert len(made) == 1
    assert made[0].name.startswith(f"pre-migrate-{HEAD}-to-{TEST_REVISION}-")
    assert not Path(f"{db.path}.restore").exists()
    reopened = Database(path=db.path, dek=dek)
    try:
        reopened.verify_key()
        assert current_revision(reopened) == HEAD
        assert blob_sizes(reopened) == sizes
        assert "extra" not in table_names(reopened)
        assert reopened.integrity_check() == ["ok"]
    finally:
        reopened.dispose()
    # The Database the migration ran on reconnects to the restored file and keeps working.
    assert blob_sizes(db) == sizes
    with db.write() as session:
        session.add(Blob(id="f" * 64, size=1))
    # The backup is a complete, keyed copy of the pre-migration database.
    copy = Database(path=made[0], dek=dek)
    try:
        assert current_revision(copy) == HEAD
        assert blob_sizes(copy) == sizes
    finally:
        copy.dispose()


# --- a successful migration -----------------------------------------------------------------


def test_successful_migration_adds_a_column_after_a_backup(
    db: Database, dek: DataKey, backups: Path, tmp_path: Path
) -> None:
    location = with_test_revision(tmp_path, ADD_COLUMN)
    sizes = blob_sizes(db)
    assert not is_current(db, location)

    backup = migrate(db, dek, backups, script_location=location)

    assert backup is not None
    assert Path(backup).parent == backups
    assert Path(backup).name.startswith(f"pre-migrate-{HEAD}-to-{TEST_REVISION}-")
    assert current_revision(db) == TEST_REVISION
    assert is_current(db, location)
    assert not is_current(db)  # ahead of the code's own head
    with db.reader.connect() as conn:
        columns = {c["name"]: c for c in sa.inspect(conn).get_columns("blob")}
    assert columns["note"]["nullable"] is True
    assert blob_sizes(db) == sizes
    assert db.integrity_check() == ["ok"]
    copy = Database(path=Path(backup), dek=dek)  # the backup is the head-revision database
    try:
        assert current_revision(copy) == HEAD
        assert blob_sizes(copy) == sizes
    finally:
        copy.dispose()
    assert migrate(db, dek, backups, script_location=location) is None
    assert len(list(backups.iterdir())) == 1


def test_an_older_version_refuses_a_newer_home_and_changes_nothing(
    db: Database, dek: DataKey, backups: Path, tmp_path: Path
) -> None:
    location = with_test_revision(tmp_path, ADD_COLUMN)  # "the newer version"
    migrate(db, dek, backups, script_location=location)
    assert db.path is not None
    before_backups = sorted(backups.iterdir())
    digest = hashlib.sha256(db.path.read_bytes()).hexdigest()

    with pytest.raises(SchemaTooNew) as refused:  # the code's own scripts: an older version
        migrate(db, dek, backups)

    assert refused.value.code == "schema_too_new" and refused.value.http_status == 409
    assert TEST_REVISION in refused.value.message and "newer" in refused.value.message
    assert current_revision(db) == TEST_REVISION
    assert sorted(backups.iterdir()) == before_backups  # no backup, no attempt
    assert hashlib.sha256(db.path.read_bytes()).hexdigest() == digest


def test_integrity_check_is_not_fooled_by_a_write_to_the_fts_table(appliance: Appliance) -> None:
    """A pooled reader that checked the FTS5 table before another connection wrote it used to
    report "fts5: checksum mismatch" for a healthy file (an FTS query would have refreshed it;
    the check itself does not); the check now runs on a fresh connection."""
    from appliance.knowledge import fts

    db = appliance.db
    assert db.integrity_check() == ["ok"]
    with db.write() as session:
        fts.insert(session, [(i, "kb1", f"alpha beta {i}") for i in range(1, 300)])
    assert db.integrity_check() == ["ok"]
    with db.write() as session:
        fts.insert(session, [(i, "kb2", f"gamma {i}") for i in range(300, 400)])
    assert db.integrity_check() == ["ok"]
    with db.read() as session:
        assert len(fts.search(session, "alpha", ["kb1"], 10)) == 10


def test_readiness_reflects_the_schema_revision(appliance: Appliance, tmp_path: Path) -> None:
    assert appliance.readiness()["ready"] is True
    location = with_test_revision(tmp_path, ADD_COLUMN)
    migrate(appliance.db, appliance.current_key(), appliance.home.backups_dir, location)
    report = appliance.readiness()
    assert report["ready"] is False
    assert report["checks"] == {"unsealed": True, "database": True, "migrations": False}


# --- a damaged database ---------------------------------------------------------------------


def damage(path: Path, pages: list[int], page_size: int) -> None:
    with path.open("r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(os.urandom(page_size))
        f.flush()
        os.fsync(f.fileno())


def layout(db: Database) -> tuple[int, int, int]:
    """(page size, page count, root page of alembic_version)."""
    with db.reader.connect() as conn:
        page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        root = conn.exec_driver_sql(
            "SELECT rootpage FROM sqlite_master WHERE name = 'alembic_version'"
        ).scalar_one()
    return page_size, pages, int(root)


@pytest.mark.parametrize("where", ["data pages", "version page"])
def test_migrate_refuses_a_damaged_database_and_leaves_it_alone(
    db: Database, dek: DataKey, backups: Path, tmp_path: Path, where: str
) -> None:
    with db.write() as session:
        FILLER.create(session.connection())
        session.execute(FILLER.insert(), [{"data": os.urandom(1000)} for _ in range(400)])
    page_size, pages, version_root = layout(db)
    assert pages > 100
    db.dispose()
    targets = [version_root] if where == "version page" else [pages // 2 + i for i in range(4)]
    assert 1 not in targets
    assert db.path is not None
    damage(db.path, targets, page_size)
    before = sha256(db.path)
    location = with_test_revision(tmp_path, ADD_COLUMN)

    with pytest.raises(DatabaseCorrupt):
        migrate(db, dek, backups, script_location=location)
    if where == "version page":  # even when no migration is due
        with pytest.raises(DatabaseCorrupt):
            migrate(db, dek, backups)
        with pytest.raises(DatabaseCorrupt):
            is_current(db)  # so readiness reports the database as down instead of crashing
    db.dispose()

    assert sha256(db.path) == before
    assert list(backups.iterdir()) == []
    assert not Path(f"{db.path}.restore").exists()
