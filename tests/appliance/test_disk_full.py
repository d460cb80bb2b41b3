"""A real full disk: the home lives on a tiny tmpfs (root mounts it, as CI runs as root).

Filling it must give the specific ``disk_full`` error and lose nothing already stored.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance import Appliance
from appliance.errors import DiskFull
from appliance.store.schema import Blob
from tests.appliance.full_disk import fill_disk
from tests.conftest import PASSPHRASE, make_settings


def test_full_disk_gives_disk_full_and_keeps_what_was_stored(tiny_disk: Path) -> None:
    appliance = Appliance(make_settings(tiny_disk / "home"))
    appliance.initialise(PASSPHRASE)
    kept = []
    with pytest.raises(DiskFull):
        for _ in range(100):
            data = secrets.token_bytes(256 * 1024)
            info = appliance.blobs.put(iter([data]))
            appliance.db.run_write(lambda s, i=info: s.add(Blob(id=i.blob_id, size=i.size)))
            kept.append((info.blob_id, data))
    assert kept, "the disk should hold a few blobs before filling up"
    assert not list((tiny_disk / "home" / "blobs" / ".tmp").glob("*"))
    for blob_id, data in kept:
        assert appliance.blobs.read(blob_id) == data
    assert appliance.db.integrity_check() == ["ok"]
    with appliance.db.read() as session:
        assert len(session.scalars(select(Blob)).all()) == len(kept)
    appliance.seal()


def test_database_write_on_full_disk_is_disk_full_and_rolls_back(tiny_disk: Path) -> None:
    appliance = Appliance(make_settings(tiny_disk / "home"))
    appliance.initialise(PASSPHRASE)
    filler = fill_disk(tiny_disk)
    with pytest.raises(DiskFull):
        for n in range(2000):
            appliance.db.run_write(
                lambda s, n=n: s.add(Blob(id=f"{n:064x}", size=n, media_type="x" * 200))
            )
    filler.unlink()
    assert appliance.db.integrity_check() == ["ok"]
    appliance.seal()
    appliance.unseal(PASSPHRASE)
    with appliance.db.read() as session:
        rows = session.scalars(select(Blob)).all()
    assert all(row.media_type == "x" * 200 for row in rows)
    appliance.seal()


def test_restore_onto_a_full_disk_is_disk_full_and_restores_nothing(
    tiny_disk: Path, tmp_path: Path
) -> None:
    from appliance.home import Home
    from appliance.store.backup import create_backup, restore_backup

    source = Appliance(make_settings(tmp_path / "source"))
    source.initialise(PASSPHRASE)
    source.blobs.put(iter([secrets.token_bytes(4 * 1024 * 1024)]))  # bigger than the tiny disk
    archive = tmp_path / "backup.tar"
    create_backup(source.home, source.db, source.current_key(), archive)
    source.seal()
    target = Home(tiny_disk / "home")
    with pytest.raises(DiskFull):
        restore_backup(archive, target, PASSPHRASE)
    assert not target.vault_path.exists()
    assert not target.db_path.exists()
    assert list(target.backups_dir.iterdir()) == []  # the staging copy was removed
