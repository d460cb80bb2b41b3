"""The key lifecycle on real homes: states, attempts, passphrase change, rekey (and its crashes),
unattended unseal, failed initialisation, no plaintext on disk, no secrets in logs."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlcipher3.dbapi2 as sqlcipher
import structlog
from sqlalchemy import select

from appliance import Appliance, EnclaveSettings, State
from appliance.errors import (
    AlreadyInitialised,
    AlreadyUnsealed,
    DiskFull,
    HomeUnwritable,
    KeyfileInvalid,
    KeyfileRequired,
    NotInitialised,
    Sealed,
    TooManyAttempts,
    WrongPassphrase,
)
from appliance.keys.secret import DataKey, key_id_for
from appliance.keys.vault import Vault, read_keyfile, write_keyfile
from appliance.logs import configure_logging
from appliance.store.schema import Blob
from tests.conftest import PASSPHRASE, make_settings

NEW_PASSPHRASE = "a completely different passphrase"
MARKER = b"ZEBRA-PLAINTEXT-MARKER-4f1c9e"


def put_data(app: Appliance) -> dict[str, bytes]:
    """Store three blobs (one spanning several chunks) and index each in the database."""
    contents = [MARKER + b" small", b"", MARKER * 100_000]
    stored = {}
    for content in contents:
        info = app.blobs.put([content])
        stored[info.blob_id] = content
    with app.db.write() as session:
        for blob_id, content in stored.items():
            session.add(Blob(id=blob_id, size=len(content), media_type=MARKER.decode()))
    return stored


def assert_data(app: Appliance, stored: dict[str, bytes]) -> None:
    for blob_id, content in stored.items():
        assert app.blobs.read(blob_id) == content
    with app.db.read() as session:
        rows = {b.id: (b.size, b.media_type) for b in session.scalars(select(Blob))}
    assert rows == {i: (len(c), MARKER.decode()) for i, c in stored.items()}


def blob_key_id(dek: DataKey) -> bytes:
    return key_id_for(dek.derive("blobs"))


def db_opens_with(path: Path, dek: DataKey) -> bool:
    """A raw SQLCipher connection: does this key open the database file?"""
    conn = sqlcipher.connect(str(path))
    try:
        conn.execute(f'PRAGMA key = "{dek.sqlcipher_pragma_value()}"')
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlcipher.DatabaseError:
        return False
    finally:
        conn.close()


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    return tmp_path / "unseal.key"


@pytest.fixture
def keyfile_app(settings: EnclaveSettings, keyfile: Path) -> Iterator[Appliance]:
    app = Appliance(settings)
    app.initialise(PASSPHRASE, keyfile_out=keyfile)
    yield app
    app.seal()


# --- states ---------------------------------------------------------------------------------


def test_states_and_readiness(settings: EnclaveSettings) -> None:
    app = Appliance(settings)
    assert app.state is State.UNINITIALISED
    assert app.readiness()["ready"] is False
    app.initialise(PASSPHRASE)
    assert app.state is State.UNSEALED
    assert app.readiness() == {
        "ready": True,
        "state": "unsealed",
        "checks": {"unsealed": True, "database": True, "migrations": True},
    }
    app.seal()
    assert app.state is State.SEALED
    assert app.readiness()["ready"] is False
    for access in (lambda: app.db, lambda: app.blobs, app.current_key):
        with pytest.raises(Sealed):
            access()
    app.unseal(PASSPHRASE)
    assert app.state is State.UNSEALED
    with pytest.raises(AlreadyUnsealed):
        app.unseal(PASSPHRASE)
    app.seal()


def test_initialise_twice_changes_nothing(appliance: Appliance, settings: EnclaveSettings) -> None:
    before = appliance.home.vault_path.read_bytes()
    with pytest.raises(AlreadyInitialised):
        appliance.initialise(PASSPHRASE)
    with pytest.raises(AlreadyInitialised):
        Appliance(settings).initialise(NEW_PASSPHRASE)
    assert appliance.home.vault_path.read_bytes() == before


def test_unseal_uninitialised(settings: EnclaveSettings) -> None:
    app = Appliance(settings)
    with pytest.raises(NotInitialised):
        app.unseal(PASSPHRASE)
    assert not settings.home.exists()


# --- attempts -------------------------------------------------------------------------------


def _rewind_backoff(app: Appliance) -> None:
    doc = json.loads(app.home.attempts_path.read_text())
    doc["last_failure"] = time.time() - 3600
    app.home.attempts_path.write_text(json.dumps(doc))


def test_failed_unseals_back_off_and_persist(
    appliance: Appliance, settings: EnclaveSettings
) -> None:
    appliance.seal()
    for expected in (1, 2, 3):
        with pytest.raises(WrongPassphrase):
            appliance.unseal("this is not the passphrase")
        assert appliance.attempts.failed == expected
    with pytest.raises(TooManyAttempts) as info:
        appliance.unseal(PASSPHRASE)  # even the right one waits
    assert 1 <= info.value.context["retry_after"] <= 2
    assert appliance.attempts.failed == 3  # waiting is not another failure

    restarted = Appliance(settings)
    assert restarted.attempts.failed == 3
    with pytest.raises(TooManyAttempts):
        restarted.unseal(PASSPHRASE)

    _rewind_backoff(restarted)
    with pytest.raises(WrongPassphrase):
        restarted.unseal("still not the passphrase")
    with pytest.raises(TooManyAttempts) as info:
        restarted.unseal(PASSPHRASE)
    assert 2 < info.value.context["retry_after"] <= 4  # the delay doubles

    _rewind_backoff(restarted)
    restarted.unseal(PASSPHRASE)
    assert restarted.state is State.UNSEALED
    assert restarted.attempts.failed == 0
    assert not restarted.home.attempts_path.exists()
    restarted.seal()


# --- passphrase change ----------------------------------------------------------------------


def test_change_passphrase_keeps_data(appliance: Appliance, settings: EnclaveSettings) -> None:
    stored = put_data(appliance)
    key_before = appliance.current_key()
    appliance.change_passphrase(PASSPHRASE, NEW_PASSPHRASE)
    appliance.seal()
    app = Appliance(settings)
    with pytest.raises(WrongPassphrase):
        app.unseal(PASSPHRASE)
    app.unseal(NEW_PASSPHRASE)
    assert app.current_key() == key_before  # data untouched, only re-wrapped
    assert_data(app, stored)
    app.seal()


# --- rekey ----------------------------------------------------------------------------------


def test_rekey_round_trip(appliance: Appliance, settings: EnclaveSettings) -> None:
    stored = put_data(appliance)
    old = appliance.current_key()
    new_id = appliance.rekey(PASSPHRASE)
    new = appliance.current_key()
    assert new_id == new.key_id.hex() != old.key_id.hex()
    assert_data(appliance, stored)
    assert {appliance.blobs.key_id_of(b) for b in stored} == {blob_key_id(new)}
    appliance.seal()

    assert Vault.load(settings.home / "vault.json").pending is None
    assert db_opens_with(settings.home / "enclave.db", new)
    assert not db_opens_with(settings.home / "enclave.db", old)
    app = Appliance(settings)
    app.unseal(PASSPHRASE)  # rekey keeps the passphrase
    assert app.current_key() == new
    assert_data(app, stored)
    app.seal()


def test_rekey_needs_the_right_passphrase_and_an_unsealed_appliance(
    appliance: Appliance,
) -> None:
    before = appliance.home.vault_path.read_bytes()
    with pytest.raises(WrongPassphrase):
        appliance.rekey("this is not the passphrase")
    assert appliance.home.vault_path.read_bytes() == before
    appliance.seal()
    with pytest.raises(Sealed):
        appliance.rekey(PASSPHRASE)


STAGES = ["pending_saved", "some_blobs_reencrypted", "blobs_reencrypted", "db_rekeyed"]


@pytest.mark.parametrize("method", ["passphrase", "keyfile"])
@pytest.mark.parametrize("stage", STAGES)
def test_interrupted_rekey_completes_at_next_unseal(
    keyfile_app: Appliance, settings: EnclaveSettings, keyfile: Path, stage: str, method: str
) -> None:
    app = keyfile_app
    stored = put_data(app)
    old, new = app.current_key(), DataKey.generate()
    # The steps of Appliance.rekey / _finish_rotation, stopped where a crash would stop them.
    vault = Vault.load(app.home.vault_path)
    vault.begin_rotation(new, PASSPHRASE, app.kdf_params(), read_keyfile(keyfile))
    vault.save(app.home.vault_path)
    if stage != "pending_saved":
        app.blobs.keys[blob_key_id(new)] = new.derive("blobs")
        ids = sorted(app.blobs.iter_ids())
        for blob_id in ids[:1] if stage == "some_blobs_reencrypted" else ids:
            assert app.blobs.reencrypt(blob_id, blob_key_id(new))
    if stage == "db_rekeyed":
        app.db.rekey(new)
    app.seal()  # the crash
    assert db_opens_with(app.home.db_path, new if stage == "db_rekeyed" else old)

    restarted = Appliance(settings)
    if method == "passphrase":
        restarted.unseal(PASSPHRASE)
    else:
        restarted.unseal(keyfile=keyfile)
    assert restarted.current_key() == new
    assert_data(restarted, stored)
    assert {restarted.blobs.key_id_of(b) for b in stored} == {blob_key_id(new)}
    restarted.seal()
    vault = Vault.load(app.home.vault_path)
    assert vault.pending is None
    assert vault.key_id == new.key_id
    assert db_opens_with(app.home.db_path, new)
    assert not db_opens_with(app.home.db_path, old)
    again = Appliance(settings)  # both ways in still work after the rotation
    again.unseal(keyfile=keyfile)
    again.seal()
    again.unseal(PASSPHRASE)
    assert_data(again, stored)
    again.seal()


# --- key files ------------------------------------------------------------------------------


def test_unattended_unseal_from_settings(
    keyfile_app: Appliance, settings: EnclaveSettings, keyfile: Path
) -> None:
    stored = put_data(keyfile_app)
    keyfile_app.seal()
    assert Appliance(settings).unseal_from_settings() is False  # not configured
    app = Appliance(make_settings(settings.home, unseal_keyfile=keyfile))
    assert app.unseal_from_settings() is True
    assert app.state is State.UNSEALED
    assert_data(app, stored)
    assert app.unseal_from_settings() is False  # already unsealed: nothing to do
    app.seal()


def test_rekey_with_keyfile_slot_requires_the_keyfile(keyfile_app: Appliance) -> None:
    stored = put_data(keyfile_app)
    old = keyfile_app.current_key()
    before = keyfile_app.home.vault_path.read_bytes()
    with pytest.raises(KeyfileRequired):
        keyfile_app.rekey(PASSPHRASE)
    assert keyfile_app.home.vault_path.read_bytes() == before
    assert keyfile_app.current_key() == old
    assert {keyfile_app.blobs.key_id_of(b) for b in stored} == {blob_key_id(old)}
    keyfile_app.seal()
    assert db_opens_with(keyfile_app.home.db_path, old)


def test_rekey_with_a_foreign_keyfile_is_refused(
    keyfile_app: Appliance, settings: EnclaveSettings, keyfile: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign.key"
    write_keyfile(foreign)
    before = keyfile_app.home.vault_path.read_bytes()
    with pytest.raises(KeyfileInvalid):
        keyfile_app.rekey(PASSPHRASE, foreign)
    assert keyfile_app.home.vault_path.read_bytes() == before
    keyfile_app.seal()
    app = Appliance(settings)
    app.unseal(keyfile=keyfile)  # the real key file still unseals
    app.seal()


# --- failed initialisation ------------------------------------------------------------------


def test_initialise_on_unwritable_home(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app = Appliance(make_settings(blocker / "home"))
    with pytest.raises(HomeUnwritable):
        app.initialise(PASSPHRASE)
    assert app.state is State.UNINITIALISED
    assert blocker.read_text() == "not a directory"


def test_disk_full_during_initialise_leaves_home_uninitialised(
    settings: EnclaveSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise DiskFull()

    monkeypatch.setattr("appliance.keys.vault.atomic_write_bytes", full)
    app = Appliance(settings)
    with pytest.raises(DiskFull):
        app.initialise(PASSPHRASE)
    assert app.state is State.UNINITIALISED
    leftovers = [
        p.name for p in settings.home.iterdir() if p.name.startswith(("enclave.db", "vault"))
    ]
    assert leftovers == []
    with pytest.raises(NotInitialised):
        app.unseal(PASSPHRASE)

    monkeypatch.undo()  # space freed: a retry works
    app.initialise(PASSPHRASE)
    app.seal()
    app.unseal(PASSPHRASE)
    app.seal()


# --- no plaintext on disk -------------------------------------------------------------------


def test_no_plaintext_anywhere_in_the_home(appliance: Appliance, settings: EnclaveSettings) -> None:
    put_data(appliance)
    key = appliance.current_key()
    appliance.seal()
    files = [p for p in settings.home.rglob("*") if p.is_file()]
    assert any(p.parent.parent.parent.name == "blobs" for p in files)
    secrets = [MARKER, PASSPHRASE.encode(), key.raw, key.raw.hex().encode()]
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"{secret!r} found in {path}"
    databases = [p for p in files if p.suffix == ".db"]
    assert settings.home / "enclave.db" in databases
    for path in databases:
        assert not path.read_bytes().startswith(b"SQLite format 3")
        conn = sqlite3.connect(path)
        try:
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute("SELECT * FROM sqlite_master").fetchall()
        finally:
            conn.close()


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**config)


@pytest.mark.usefixtures("restore_logging")
def test_logs_hold_no_secrets(settings: EnclaveSettings, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    configure_logging("DEBUG", log_dir)
    app = Appliance(settings)
    app.initialise(PASSPHRASE)
    keys = [app.current_key()]
    app.seal()
    wrong = "wrong passphrase attempt 12345"
    with pytest.raises(WrongPassphrase):
        app.unseal(wrong)
    app.unseal(PASSPHRASE)
    app.rekey(PASSPHRASE)
    keys.append(app.current_key())
    app.seal()

    log = structlog.get_logger("test.redaction")
    log.warning("probe", passphrase="x-secret-probe", new_passphrase="y-secret", dek="z-secret")
    try:
        passphrase = PASSPHRASE  # a local in the failing frame must not be rendered
        raise WrongPassphrase(f"length {len(passphrase)}")
    except WrongPassphrase:
        log.exception("boom")

    text = (log_dir / "enclave.log").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    events = {r["event"] for r in records}
    assert {"appliance.initialised", "unseal.failed", "unseal.ok", "vault.rekeyed"} <= events
    probe = next(r for r in records if r["event"] == "probe")
    assert probe["passphrase"] == probe["new_passphrase"] == probe["dek"] == "[redacted]"
    for secret in (PASSPHRASE, wrong, "x-secret-probe", "y-secret", "z-secret"):
        assert secret not in text
    for key in keys:
        for secret in (key.raw.hex(), key.raw.hex().upper(), key.derive("blobs").hex()):
            assert secret not in text
