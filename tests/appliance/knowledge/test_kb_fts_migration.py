"""Migration 0011: the FTS5 table gains an indexed ``kb`` column; existing rows keep their text
and are found by base after the upgrade (and the downgrade puts the old table back)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from appliance.keys.secret import DataKey
from appliance.knowledge import fts
from appliance.store.database import Database
from appliance.store.migrate import (
    SCRIPT_LOCATION,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
)
from tests.appliance.migration_copies import migrations_before

KB_A = "a" * 32
KB_B = "0123456789abcdef" * 2


def test_upgrade_keeps_rows_and_indexes_their_base(tmp_path: Path) -> None:
    before = migrations_before(tmp_path, "0011")  # without 0011 and every revision after it
    dek = DataKey.generate()
    db = Database(path=tmp_path / "enclave.db", dek=dek)
    try:
        migrate(db, dek, None, before)
        assert current_revision(db) == "0010"
        with db.write() as session:
            session.execute(
                text(
                    "INSERT INTO knowledge_chunk_fts (rowid, body, kb_id) VALUES "
                    "(1, 'pump cavitation report', :a), (2, 'pump valve', :b)"
                ),
                {"a": KB_A, "b": KB_B},
            )
        # The upgrade runs at the next start, on fresh connections. (A reader connection that
        # read the FTS5 table before a later write can report a false "checksum mismatch" in
        # PRAGMA integrity_check: an FTS5 cache quirk, seen with SQLCipher 4 / SQLite 3.53.)
        db.dispose()
        db = Database(path=tmp_path / "enclave.db", dek=dek)
        migrate(db, dek, None)

        assert current_revision(db) == head_revision()
        with db.read() as session:
            assert fts.rowids(session) == {1, 2}
            assert [c for c, _ in fts.search(session, "pump", [KB_A], 10)] == [1]
            assert [c for c, _ in fts.search(session, "pump", [KB_B], 10)] == [2]
            assert {c for c, _ in fts.search(session, "pump", [KB_A, KB_B], 10)} == {1, 2}
    finally:
        db.dispose()


def test_downgrade_restores_the_unindexed_column(tmp_path: Path) -> None:
    dek = DataKey.generate()
    db = Database(path=tmp_path / "enclave.db", dek=dek)
    try:
        migrate(db, dek, None)
        with db.write() as session:
            fts.insert(session, [(7, KB_B, "turbine blade wear")])
        config = alembic_config(SCRIPT_LOCATION)
        with db.write() as session:
            config.attributes["connection"] = session.connection()
            command.downgrade(config, "0010")
        with db.read() as session:
            rows = session.execute(text("SELECT rowid, body, kb_id FROM knowledge_chunk_fts"))
            assert [tuple(r) for r in rows] == [(7, "turbine blade wear", KB_B)]
    finally:
        db.dispose()
