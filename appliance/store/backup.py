"""Backups: one tar file holding only ciphertext (database, vault, blobs) plus a manifest.

The database is copied with SQLite's online backup API (consistent while the appliance runs)
and stays encrypted under the same data key; the vault travels with it, so the admin passphrase
that was valid at backup time opens the restored home.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from appliance.errors import AlreadyInitialised, BackupInvalid, EnclaveError
from appliance.home import Home
from appliance.keys.secret import DataKey
from appliance.keys.vault import Vault
from appliance.store.database import Database
from appliance.store.files import fsync_dir, storage_error
from appliance.store.migrate import current_revision
from models import sha256_file

FORMAT = "enclave-backup"
VERSION = 1
_MEMBER = re.compile(
    r"^(manifest\.json|vault\.json|enclave\.db|blobs/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64})$"
)


def create_backup(home: Home, db: Database, dek: DataKey, out: Path) -> dict[str, Any]:
    """Write a backup of ``home`` to ``out`` atomically; returns the manifest."""
    out = out.absolute()
    with tempfile.TemporaryDirectory(dir=home.backups_dir) as staging:
        db_copy = Path(staging) / "enclave.db"
        db.backup_to(db_copy, dek)
        files: dict[str, Path] = {"vault.json": home.vault_path, "enclave.db": db_copy}
        for blob in sorted(home.blobs_dir.glob("??/??/*")):
            files[blob.relative_to(home.root).as_posix()] = blob
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "key_id": dek.key_id.hex(),
            "schema_revision": current_revision(db),
            "files": {
                name: {"sha256": sha256_file(p), "size": p.stat().st_size}
                for name, p in files.items()
            },
        }
        tmp = out.with_name(f".{out.name}.partial")
        try:
            with tarfile.open(tmp, "w") as tar:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
                for name, path in files.items():
                    tar.add(path, arcname=name, recursive=False)
            os.chmod(tmp, 0o600)
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, out)
            fsync_dir(out.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise storage_error(exc, f"write {out}") from exc
    return manifest


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.getmember("manifest.json")
        handle = tar.extractfile(member)
        manifest = json.loads(handle.read()) if handle else None
    except (KeyError, ValueError, tarfile.TarError) as exc:
        raise BackupInvalid("The file is not an Enclave backup (no readable manifest).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupInvalid("The file is not an Enclave backup.")
    if manifest.get("version") != VERSION or not isinstance(manifest.get("files"), dict):
        raise BackupInvalid("This backup was written by an unsupported Enclave version.")
    return manifest


def _extract_verified(tar: tarfile.TarFile, manifest: dict[str, Any], dest: Path) -> None:
    expected = manifest["files"]
    seen = set()
    for member in tar.getmembers():
        if member.name == "manifest.json":
            continue
        if not _MEMBER.match(member.name) or not member.isfile() or member.name not in expected:
            raise BackupInvalid(
                f"Unexpected entry {member.name!r} in the backup; nothing was restored."
            )
        target = dest / member.name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        source = tar.extractfile(member)
        if source is None:
            raise BackupInvalid(f"Entry {member.name!r} cannot be read.")
        _copy_member(source, target, member.name)
        target.chmod(0o600)
        if sha256_file(target) != expected[member.name].get("sha256"):
            raise BackupInvalid(f"{member.name} in the backup is damaged (checksum mismatch).")
        seen.add(member.name)
    missing = set(expected) - seen
    if missing:
        raise BackupInvalid(f"The backup is incomplete: {sorted(missing)[0]} is missing.")


def _copy_member(source: IO[bytes], target: Path, name: str) -> None:
    """Copy one archive member: a read failure means a damaged backup (``backup_invalid``), a
    write failure is the disk's (``disk_full`` / ``storage_error``)."""
    try:
        handle = target.open("wb")
    except OSError as exc:
        raise storage_error(exc, f"restore {name}") from exc
    with handle:
        while True:
            try:
                block = source.read(1 << 20)
            except (OSError, tarfile.TarError, EOFError) as exc:
                raise BackupInvalid(f"{name} in the backup cannot be read.") from exc
            if not block:
                return
            try:
                handle.write(block)
            except OSError as exc:
                raise storage_error(exc, f"restore {name}") from exc


def restore_backup(
    archive: Path, home: Home, passphrase: str, force: bool = False
) -> dict[str, Any]:
    """Restore ``archive`` into ``home`` after verifying every checksum, the passphrase and
    ``PRAGMA integrity_check``. An existing home is refused unless ``force``; then its data is
    moved to ``backups/pre-restore-<time>/`` rather than deleted. Returns the manifest."""
    if home.is_initialised() and not force:
        raise AlreadyInitialised(
            "The home already holds data; pass --force to replace it (it is kept aside)."
        )
    home.ensure()
    staging = Path(tempfile.mkdtemp(prefix="restore-", dir=home.backups_dir))
    try:
        try:
            with tarfile.open(archive, "r:") as tar:
                manifest = _read_manifest(tar)
                _extract_verified(tar, manifest, staging)
        except (OSError, tarfile.TarError) as exc:  # opening or walking the archive itself
            raise BackupInvalid(f"Cannot read {archive} as an Enclave backup.") from exc
        dek = Vault.load(staging / "vault.json").unwrap_with_passphrase(passphrase)
        db = Database(path=staging / "enclave.db", dek=dek)
        try:
            db.verify_key()
            problems = db.integrity_check()
        finally:
            db.dispose()
        if problems != ["ok"]:
            raise BackupInvalid(f"The backed-up database fails its integrity check: {problems[0]}")
        _swap_in(home, staging)
    except EnclaveError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _swap_in(home: Home, staging: Path) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = home.backups_dir / f"pre-restore-{stamp}"
    n = 1
    while aside.exists():  # a second restore within the same second must not overwrite the first
        aside = home.backups_dir / f"pre-restore-{stamp}-{n}"
        n += 1
    moved = []
    for name in ("enclave.db", "enclave.db-wal", "enclave.db-shm", "vault.json", "blobs"):
        current = home.root / name
        if current.exists():
            aside.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(current, aside / name)
            moved.append(name)
    (staging / "blobs").mkdir(exist_ok=True, mode=0o700)
    for name in ("enclave.db", "blobs", "vault.json"):  # vault last: it marks the home initialised
        os.replace(staging / name, home.root / name)
    fsync_dir(home.root)
