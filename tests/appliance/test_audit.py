"""The tamper-evident audit log on real SQLCipher homes: chain, tampering, rekey, CLI, export."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from appliance import Appliance, EnclaveSettings, State
from appliance.audit import GENESIS, AuditEntry, AuditLog, VerifyResult, ensure_audit_key
from appliance.audit.log import compute_hash
from appliance.errors import InvalidRequest, Sealed, StorageError, WrongPassphrase
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from appliance.store.migrate import SCRIPT_LOCATION, current_revision, head_revision, migrate
from tests.conftest import PASSPHRASE, run_cli

run = run_cli


def fill(appliance: Appliance, n: int) -> None:
    """Append ``n`` entries after the ``init`` entry (positions 2 … n + 1)."""
    for i in range(n):
        appliance.audit.record(
            action="note", actor=f"user:{i % 3}", target=f"t{i}", details={"i": i}
        )


def raw(appliance: Appliance, sql: str, **params: object) -> None:
    with appliance.db.write() as session:
        session.execute(text(sql), params)


def actions(appliance: Appliance) -> list[str]:
    return [row["action"] for row in appliance.audit.query(limit=1000)]


# --- the chain ------------------------------------------------------------------------------


def test_a_chain_of_entries_verifies(appliance: Appliance) -> None:
    fill(appliance, 30)
    result = appliance.audit.verify()
    assert result.ok and result.count == 31
    assert result.first_bad is None and result.reason is None
    rows = appliance.audit.query(limit=1000)
    assert [r["id"] for r in rows] == list(range(1, 32))
    assert rows[0]["action"] == "init" and rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in pairwise(rows))
    assert rows[1]["details"] == {"i": 0} and rows[1]["created_at"].endswith("+00:00")


def test_changing_one_byte_of_an_entry_is_found(appliance: Appliance) -> None:
    fill(appliance, 10)
    raw(appliance, "UPDATE audit_entry SET details = :d WHERE id = 7", d='{"i": 6 }')
    result = appliance.audit.verify()
    assert (result.ok, result.first_bad, result.count) == (False, 7, 6)
    assert result.reason is not None and "altered" in result.reason


@pytest.mark.parametrize("column", ["action", "actor", "created_at", "outcome"])
def test_changing_any_field_is_found(appliance: Appliance, column: str) -> None:
    fill(appliance, 10)
    with appliance.db.read() as session:
        value = session.execute(text(f"SELECT {column} FROM audit_entry WHERE id = 7")).scalar()
    changed = str(value)[:-1] + ("x" if str(value)[-1] != "x" else "y")
    raw(appliance, f"UPDATE audit_entry SET {column} = :v WHERE id = 7", v=changed)
    assert appliance.audit.verify().first_bad == 7


def test_a_deleted_middle_row_is_found(appliance: Appliance) -> None:
    fill(appliance, 10)
    raw(appliance, "DELETE FROM audit_entry WHERE id = :id", id=5)
    result = appliance.audit.verify()
    assert (result.ok, result.first_bad) == (False, 5)
    assert result.reason is not None and "missing" in result.reason


def test_a_truncated_tail_is_found(appliance: Appliance) -> None:
    fill(appliance, 10)
    raw(appliance, "DELETE FROM audit_entry WHERE id > :id", id=8)
    result = appliance.audit.verify()
    assert (result.ok, result.first_bad) == (False, 9)


def test_a_row_rehashed_without_the_key_is_found(appliance: Appliance) -> None:
    """An attacker edits entry 7 and rebuilds the chain from there with a key of their own."""
    fill(appliance, 10)
    with appliance.db.write() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        prev = entries[5].entry_hash
        for entry in entries[6:]:
            if entry.id == 7:
                entry.action = "harmless"
            entry.prev_hash = prev
            entry.entry_hash = prev = compute_hash(b"f" * 32, prev, entry)
    result = appliance.audit.verify()
    assert (result.ok, result.first_bad) == (False, 7)
    assert result.reason is not None and "altered" in result.reason


def test_swapped_rows_are_found(appliance: Appliance) -> None:
    fill(appliance, 10)
    cols = "created_at, actor, action, target, outcome, details, prev_hash, entry_hash"
    with appliance.db.write() as session:
        a = session.execute(text(f"SELECT {cols} FROM audit_entry WHERE id = 4")).one()
        b = session.execute(text(f"SELECT {cols} FROM audit_entry WHERE id = 5")).one()
        sets = ", ".join(f"{c} = :{c}" for c in cols.split(", "))
        session.execute(text(f"UPDATE audit_entry SET {sets} WHERE id = 4"), b._asdict())
        session.execute(text(f"UPDATE audit_entry SET {sets} WHERE id = 5"), a._asdict())
    assert appliance.audit.verify().first_bad == 4


# --- transactions and lifecycle ---------------------------------------------------------------


def test_a_rolled_back_action_leaves_no_entry(appliance: Appliance) -> None:
    before = appliance.audit.verify().count
    with pytest.raises(RuntimeError), appliance.db.write() as session:
        appliance.audit.append(session, action="user.create", target="user:9")
        raise RuntimeError("the action failed")
    assert "user.create" not in actions(appliance)
    appliance.audit.record(action="after")
    result = appliance.audit.verify()
    assert result.ok and result.count == before + 1


def test_unknown_outcome_is_refused(appliance: Appliance) -> None:
    with pytest.raises(InvalidRequest):
        appliance.audit.record(action="x", outcome="maybe")


def test_lifecycle_events_are_recorded(appliance: Appliance, tmp_path: Path) -> None:
    appliance.seal()
    with pytest.raises(Sealed):
        _ = appliance.audit
    for _ in range(2):
        with pytest.raises(WrongPassphrase):
            appliance.unseal("not the passphrase at all")
    appliance.unseal(PASSPHRASE, actor="cli", source_ip="10.0.0.5")
    appliance.add_keyfile(PASSPHRASE, tmp_path / "unseal.key")
    appliance.change_passphrase(PASSPHRASE, PASSPHRASE + " 2")
    rows = appliance.audit.query(limit=1000)
    assert [r["action"] for r in rows] == ["init", "seal", "unseal", "keyfile.create", "passwd"]
    unseal = rows[2]
    assert unseal["details"] == {"method": "passphrase", "failed_attempts_before": 2}
    assert (unseal["actor"], unseal["source_ip"]) == ("cli", "10.0.0.5")
    appliance.seal()
    appliance.unseal(keyfile=tmp_path / "unseal.key")
    last = appliance.audit.query(action="unseal")[-1]
    assert last["details"] == {"method": "keyfile", "failed_attempts_before": 0}
    assert appliance.audit.verify().ok


def test_entries_survive_a_rekey(appliance: Appliance) -> None:
    fill(appliance, 5)
    key_id = appliance.rekey(PASSPHRASE)
    result = appliance.audit.verify()
    assert result.ok and result.count == 7
    assert appliance.audit.query(action="rekey")[0]["details"] == {"key_id": key_id}
    appliance.seal()
    appliance.unseal(PASSPHRASE)
    assert appliance.audit.verify().ok


def test_a_home_from_before_the_audit_log_gets_a_key(
    appliance: Appliance, settings: EnclaveSettings
) -> None:
    """Homes migrated from 0001 have no audit key and no entries: one is made at unseal."""
    raw(appliance, "DELETE FROM audit_entry")
    raw(appliance, "DELETE FROM sqlite_sequence WHERE name = 'audit_entry'")
    raw(appliance, "UPDATE installation SET audit_key = NULL")
    appliance.seal(record=False)
    again = Appliance(settings)
    again.unseal(PASSPHRASE)
    try:
        with again.db.read() as session:
            key = session.execute(text("SELECT audit_key FROM installation")).scalar()
        assert key is not None and len(key) == 32
        assert actions(again) == ["unseal"]
        assert again.audit.verify().ok
    finally:
        again.seal()


# --- query and export -----------------------------------------------------------------------


def test_query_filters(appliance: Appliance) -> None:
    fill(appliance, 9)
    assert [r["target"] for r in appliance.audit.query(actor="user:1")] == ["t1", "t4", "t7"]
    assert len(appliance.audit.query(action="note", limit=4, offset=7)) == 2
    now = datetime.now(UTC)
    assert len(appliance.audit.query(since=now - timedelta(minutes=5))) == 10
    assert appliance.audit.query(until=now - timedelta(minutes=5)) == []
    assert appliance.audit.query(since=now + timedelta(minutes=5)) == []
    naive = (now + timedelta(minutes=5)).replace(tzinfo=None)
    assert len(appliance.audit.query(until=naive)) == 10


def test_export_csv_and_json(appliance: Appliance) -> None:
    fill(appliance, 1200)  # more than one page
    raw(appliance, "UPDATE audit_entry SET target = '=cmd()' WHERE id = 3")
    body = "".join(appliance.audit.export("json", actor="user:2"))
    rows = json.loads(body)
    assert len(rows) == 400 and all(r["actor"] == "user:2" for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    chunks = list(appliance.audit.export("csv", action="note"))
    assert len(chunks) > 3  # streamed page by page
    table = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(table) == 1200
    assert table[0]["details"] == '{"i": 0}' and table[0]["source_ip"] == ""
    assert table[1]["target"] == "'=cmd()"
    assert json.loads("".join(appliance.audit.export("json", action="nothing"))) == []
    with pytest.raises(InvalidRequest):
        appliance.audit.export("xml")


# --- the command line -----------------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_cli_verify_healthy_and_tampered(appliance: Appliance, passphrase_file: Path) -> None:
    fill(appliance, 10)
    appliance.seal()
    home = appliance.home.root
    result = run("audit", "verify", "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    # init, 10 notes, seal, and this command's own unseal
    assert result.stdout.strip() == "ok 13 entries"

    appliance.unseal(PASSPHRASE)
    raw(appliance, "UPDATE audit_entry SET action = 'nota' WHERE id = 7")
    appliance.seal()
    result = run("audit", "verify", "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: audit_chain_broken: entry 7: altered")


@pytest.mark.usefixtures("cli_env")
def test_cli_export(appliance: Appliance, passphrase_file: Path, tmp_path: Path) -> None:
    fill(appliance, 6)
    appliance.seal()
    home = appliance.home.root
    out = tmp_path / "audit.csv"
    args = ["audit", "export", "--home", home, "--passphrase-file", passphrase_file]
    result = run(*args, "--format", "csv", "--actor", "user:0", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert [r["target"] for r in csv.DictReader(out.open())] == ["t0", "t3"]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    result = run(*args, "--format", "json", "--action", "unseal", "--since", since)
    assert result.exit_code == 0, result.output
    assert [r["actor"] for r in json.loads(result.stdout)] == ["cli", "cli"]  # both exports
    result = run(*args, "--since", "yesterday")
    assert result.exit_code == 1 and "error: invalid_request:" in result.stderr


def test_entry_count_matches_table(appliance: Appliance) -> None:
    fill(appliance, 3)
    with appliance.db.read() as session:
        count = session.scalar(select(func.count()).select_from(AuditEntry))
    assert appliance.audit.verify().count == count == 4


def test_an_unseal_that_cannot_be_audited_stays_sealed(
    appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    appliance.seal()

    def broken(*_args: object, **_kwargs: object) -> int:
        raise StorageError("disk gone")

    monkeypatch.setattr(AuditLog, "record", broken)
    with pytest.raises(StorageError):
        appliance.unseal(PASSPHRASE)
    assert appliance.state is State.SEALED
    with pytest.raises(Sealed):
        _ = appliance.db
    monkeypatch.undo()
    appliance.unseal(PASSPHRASE)
    monkeypatch.setattr(AuditLog, "record", broken)
    appliance.seal()  # a seal that cannot be recorded still seals
    assert appliance.state is State.SEALED
    monkeypatch.undo()
    appliance.unseal(PASSPHRASE)
    assert actions(appliance) == ["init", "seal", "unseal", "unseal"]
    assert appliance.audit.verify().ok


def test_migration_0002_upgrades_a_0001_database(tmp_path: Path) -> None:
    """A real 0001 database with its installation row gains the table and a NULL audit key."""
    old = tmp_path / "migrations"
    shutil.copytree(SCRIPT_LOCATION, old, ignore=shutil.ignore_patterns("__pycache__"))
    for script in (old / "versions").glob("*.py"):
        if not script.name.startswith("0001_"):
            script.unlink()
    dek = DataKey.generate()
    db = Database(path=tmp_path / "old.db", dek=dek)
    try:
        migrate(db, dek, tmp_path, script_location=old)
        assert current_revision(db) == "0001"
        with db.write() as session:
            session.execute(
                text("INSERT INTO installation VALUES (1, 'i-1', :at, :key)"),
                {"at": "2026-01-01 00:00:00", "key": b"k" * 32},
            )
        migrate(db, dek, tmp_path)
        assert current_revision(db) == head_revision()
        with db.read() as session:
            assert session.execute(text("SELECT audit_key FROM installation")).scalar() is None
        key = ensure_audit_key(db)
        assert len(key) == 32 and ensure_audit_key(db) == key
        log = AuditLog(db, key)
        log.record(action="first")
        assert log.verify() == VerifyResult(True, 1)
    finally:
        db.dispose()
