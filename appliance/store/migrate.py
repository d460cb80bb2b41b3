"""Schema migrations at unseal: integrity check, online backup, upgrade, restore on failure."""

from __future__ import annotations

import functools
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DatabaseError

from appliance.errors import DatabaseCorrupt, MigrationFailed, SchemaTooNew
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from appliance.store.files import fsync_dir

log = structlog.get_logger(__name__)

SCRIPT_LOCATION = Path(__file__).parent / "migrations"


def alembic_config(script_location: Path = SCRIPT_LOCATION) -> Config:
    """An Alembic config that needs no alembic.ini (the appliance drives migrations)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


@functools.lru_cache(maxsize=8)
def head_revision(script_location: Path = SCRIPT_LOCATION) -> str | None:
    """The newest revision(s) the code knows, ``+``-joined when capabilities branch from a common
    parent (the scripts are read once: /readyz asks often)."""
    heads = ScriptDirectory.from_config(alembic_config(script_location)).get_heads()
    return "+".join(sorted(heads)) or None


def current_revision(db: Database) -> str | None:
    """The revision(s) the database is at, ``+``-joined like :func:`head_revision` (None for an
    empty database)."""
    try:
        with db.reader.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
            return "+".join(sorted(heads)) or None
    except DatabaseError as exc:  # e.g. a damaged page under alembic_version
        raise DatabaseCorrupt(f"The schema revision cannot be read: {exc.orig}") from exc


def is_current(db: Database, script_location: Path = SCRIPT_LOCATION) -> bool:
    """Whether the database schema is at the code's head revision."""
    return current_revision(db) == head_revision(script_location)


def migrate(
    db: Database,
    dek: DataKey | None,
    backups_dir: Path | None,
    script_location: Path = SCRIPT_LOCATION,
) -> str | None:
    """Bring the schema to head. Returns the backup path used, or None if nothing ran.

    Before any change: ``PRAGMA integrity_check`` and an online backup. The whole upgrade runs
    in one transaction (SQLite DDL is transactional); if it fails, the transaction is rolled
    back *and* the backup is put back, so the database is exactly as it was.
    """
    start, head = current_revision(db), head_revision(script_location)
    if start == head:
        return None
    unknown = _unknown_revisions(start, script_location)
    if unknown:
        # A downgrade is never attempted: an older version started on a newer home stops here,
        # before the backup and before any change.
        log.error("migration.refused", from_revision=start, to_revision=head, unknown=unknown)
        raise SchemaTooNew(
            f"This home's database is at schema {start}, which this Enclave version "
            f"(schema {head}) does not know: it was written by a newer version. Start that "
            "version or a later one; nothing was changed."
        )
    problems = db.integrity_check()
    if problems != ["ok"]:
        raise DatabaseCorrupt(f"Integrity check failed before migrating: {problems[0]}")
    backup: Path | None = None
    if db.is_sqlite and dek is not None and backups_dir is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        backup = backups_dir / f"pre-migrate-{start or 'empty'}-to-{head}-{stamp}.db"
        db.backup_to(backup, dek)
    log.info("migration.start", from_revision=start, to_revision=head)
    cfg = alembic_config(script_location)
    try:
        with db.write() as session:
            cfg.attributes["connection"] = session.connection()
            command.upgrade(cfg, "heads")
    except Exception as exc:
        # Any failure counts: db.write() maps driver errors (bad SQL, locks) to StorageError,
        # and a faulty migration script may raise anything.
        log.error("migration.failed", from_revision=start, error=str(exc))
        if backup is not None and db.path is not None:
            _restore_file(db, backup, db.path)
        raise MigrationFailed(
            f"Migrating the database from {start or 'empty'} to {head} failed ({exc.__class__.__name__}); "
            "the database was restored to its prior state."
        ) from exc
    problems = db.integrity_check()
    if problems != ["ok"]:
        raise DatabaseCorrupt(f"Integrity check failed after migrating: {problems[0]}")
    log.info("migration.done", revision=head, backup=str(backup) if backup else None)
    return str(backup) if backup else None


def _unknown_revisions(current: str | None, script_location: Path) -> list[str]:
    """The revisions of ``current`` that the code's migration scripts do not contain."""
    if current is None:
        return []
    scripts = ScriptDirectory.from_config(alembic_config(script_location))
    known = {rev.revision for rev in scripts.walk_revisions()}
    return [rev for rev in current.split("+") if rev not in known]


def _restore_file(db: Database, backup: Path, target: Path) -> None:
    db.dispose()
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    tmp = target.with_name(target.name + ".restore")
    shutil.copyfile(backup, tmp)
    with open(tmp, "rb") as f:  # durable before it replaces the database
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)
