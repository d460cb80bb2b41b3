"""The `enclave` command on real homes: happy paths, one-line errors, backup/restore, doctor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select

import appliance.store.backup as backup_module
from appliance import Appliance, __version__
from appliance.keys.vault import Vault
from appliance.store.schema import Blob
from tests.conftest import FAST_KDF, PASSPHRASE, make_settings, run_cli

ENCLAVE = Path(sys.executable).parent / "enclave"
ERROR_LINE = re.compile(r"^error: ([a-z_]+): \S.*$")


pytestmark = pytest.mark.usefixtures("cli_env")
run = run_cli


def expect_error(result: Result, code: str, only_line: bool = True) -> None:
    """Exit 1 with exactly one ``error: <code>: ...`` line, the last one on stderr."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    match = ERROR_LINE.match(errors[0])
    assert match and match.group(1) == code, errors[0]
    if only_line:
        assert len(lines) == 1, result.stderr


def write_passphrase(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def home(tmp_path: Path, passphrase_file: Path) -> Path:
    """A home initialised with `enclave init`."""
    path = tmp_path / "home"
    result = run("init", "--home", path, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    assert f"initialised {path}" in result.stdout
    return path


def put_data(home: Path, *contents: bytes) -> dict[str, bytes]:
    app = Appliance(make_settings(home))
    app.unseal(PASSPHRASE)
    stored = {app.blobs.put([c]).blob_id: c for c in contents}
    with app.db.write() as session:
        for blob_id, content in stored.items():
            session.add(Blob(id=blob_id, size=len(content), media_type="text/plain"))
    app.seal()
    return stored


def read_data(home: Path, passphrase: str = PASSPHRASE) -> dict[str, bytes]:
    """Every indexed blob's content; fails if a row points at an unreadable blob."""
    app = Appliance(make_settings(home))
    app.unseal(passphrase)
    try:
        with app.db.read() as session:
            rows = list(session.scalars(select(Blob)))
        data = {row.id: app.blobs.read(row.id) for row in rows}
        assert all(len(data[row.id]) == row.size for row in rows)
        assert sorted(data) == sorted(app.blobs.iter_ids())
        return data
    finally:
        app.seal()


# --- key commands ---------------------------------------------------------------------------


def test_init_and_unseal(home: Path, passphrase_file: Path) -> None:
    assert (home / "vault.json").stat().st_mode & 0o777 == 0o600
    result = run("unseal", "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    assert "database ok, schema current" in result.stdout
    expect_error(
        run("init", "--home", home, "--passphrase-file", passphrase_file), "already_initialised"
    )


def test_passwd(home: Path, passphrase_file: Path, tmp_path: Path) -> None:
    stored = put_data(home, b"kept across passwd")
    new = write_passphrase(tmp_path / "new.txt", "my brand new long passphrase")
    result = run(
        "passwd", "--home", home, "--passphrase-file", passphrase_file, "--new-passphrase-file", new
    )
    assert result.exit_code == 0, result.output
    assert "passphrase changed" in result.stdout
    expect_error(
        run("unseal", "--home", home, "--passphrase-file", passphrase_file),
        "wrong_passphrase",
        only_line=False,
    )
    assert run("unseal", "--home", home, "--passphrase-file", new).exit_code == 0
    assert read_data(home, "my brand new long passphrase") == stored


def test_rekey(home: Path, passphrase_file: Path) -> None:
    stored = put_data(home, b"first", b"second" * 1000)
    before = Vault.load(home / "vault.json").key_id.hex()
    result = run("rekey", "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    after = Vault.load(home / "vault.json").key_id.hex()
    assert after != before
    assert f"new key id {after}" in result.stdout
    assert read_data(home) == stored


def test_keyfile_and_rekey_with_it(home: Path, passphrase_file: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "unseal.key"
    result = run("keyfile", "--out", keyfile, "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    assert keyfile.stat().st_mode & 0o777 == 0o600
    app = Appliance(make_settings(home))
    app.unseal(keyfile=keyfile)
    app.seal()
    expect_error(
        run("keyfile", "--out", keyfile, "--home", home, "--passphrase-file", passphrase_file),
        "keyfile_invalid",
    )
    before = (home / "vault.json").read_bytes()
    expect_error(
        run("rekey", "--home", home, "--passphrase-file", passphrase_file), "keyfile_required"
    )
    assert (home / "vault.json").read_bytes() == before
    result = run(
        "rekey", "--home", home, "--passphrase-file", passphrase_file, "--keyfile", keyfile
    )
    assert result.exit_code == 0, result.output
    assert Vault.load(home / "vault.json").key_id.hex() in result.stdout
    app.unseal(keyfile=keyfile)  # the key file was re-wrapped, not lost
    app.seal()


# --- one-line failures ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["unseal", "passwd", "rekey", "backup"])
def test_missing_home(command: str, tmp_path: Path, passphrase_file: Path) -> None:
    extra = ["--out", tmp_path / "b.tar"] if command == "backup" else []
    if command == "passwd":
        extra = ["--new-passphrase-file", passphrase_file]
    result = run(
        command, "--home", tmp_path / "nowhere", "--passphrase-file", passphrase_file, *extra
    )
    expect_error(result, "not_initialised")
    assert not (tmp_path / "nowhere").exists()


def test_wrong_passphrase(home: Path, tmp_path: Path) -> None:
    wrong = write_passphrase(tmp_path / "wrong.txt", "not the admin passphrase")
    expect_error(
        run("unseal", "--home", home, "--passphrase-file", wrong),
        "wrong_passphrase",
        only_line=False,
    )
    expect_error(
        run("backup", "--out", tmp_path / "b.tar", "--home", home, "--passphrase-file", wrong),
        "wrong_passphrase",
        only_line=False,
    )
    assert not (tmp_path / "b.tar").exists()


@pytest.mark.parametrize("content", ["", "\n"], ids=["empty", "blank line"])
def test_empty_passphrase_file(home: Path, tmp_path: Path, content: str) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    expect_error(run("unseal", "--home", home, "--passphrase-file", empty), "invalid_request")
    expect_error(
        run("init", "--home", tmp_path / "new", "--passphrase-file", empty), "invalid_request"
    )
    assert not (tmp_path / "new" / "vault.json").exists()


def test_missing_passphrase_and_no_terminal(home: Path, tmp_path: Path) -> None:
    expect_error(
        run("unseal", "--home", home, "--passphrase-file", tmp_path / "absent.txt"),
        "invalid_request",
    )
    expect_error(run("unseal", "--home", home), "invalid_request")  # no prompt without a tty


def test_weak_passphrase_at_init(tmp_path: Path) -> None:
    weak = write_passphrase(tmp_path / "weak.txt", "short")
    expect_error(
        run("init", "--home", tmp_path / "h", "--passphrase-file", weak), "weak_passphrase"
    )
    assert not (tmp_path / "h" / "vault.json").exists()


def test_real_entry_point(tmp_path: Path, passphrase_file: Path) -> None:
    env = {**os.environ, **FAST_KDF}
    version = subprocess.run(
        [ENCLAVE, "--version"], capture_output=True, text=True, env=env, check=False
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"enclave {__version__}"
    missing = tmp_path / "nowhere"
    failed = subprocess.run(
        [ENCLAVE, "unseal", "--home", missing, "--passphrase-file", passphrase_file],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: not_initialised: "), failed.stderr


# --- backup and restore ---------------------------------------------------------------------


@pytest.fixture
def archive(home: Path, passphrase_file: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    stored = put_data(home, b"backed up one", b"backed up two" * 50_000, b"")
    out = tmp_path / "enclave.tar"
    result = run("backup", "--out", out, "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    assert "backup written" in result.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    return out, stored


def test_backup_restore_round_trip(
    archive: tuple[Path, dict[str, bytes]], passphrase_file: Path, tmp_path: Path
) -> None:
    out, stored = archive
    assert b"backed up one" not in out.read_bytes()
    target = tmp_path / "restored"
    result = run("restore", out, "--home", target, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    assert f"into {target}" in result.stdout
    assert read_data(target) == stored


def test_restore_garbage_is_backup_invalid(tmp_path: Path, passphrase_file: Path) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    target = tmp_path / "target"
    expect_error(
        run("restore", garbage, "--home", target, "--passphrase-file", passphrase_file),
        "backup_invalid",
    )
    assert not (target / "vault.json").exists()
    assert list((target / "backups").iterdir()) == []  # no staging left behind


def test_restore_refuses_initialised_home_without_force(
    archive: tuple[Path, dict[str, bytes]], home: Path, passphrase_file: Path
) -> None:
    out, _ = archive
    before = (home / "vault.json").read_bytes()
    expect_error(
        run("restore", out, "--home", home, "--passphrase-file", passphrase_file),
        "already_initialised",
    )
    assert (home / "vault.json").read_bytes() == before
    assert not list((home / "backups").glob("pre-restore-*"))


def test_restore_force_keeps_old_data_aside(
    archive: tuple[Path, dict[str, bytes]], home: Path, passphrase_file: Path
) -> None:
    out, stored = archive
    later = put_data(home, b"written after the backup")
    old_vault = (home / "vault.json").read_bytes()
    result = run("restore", out, "--home", home, "--passphrase-file", passphrase_file, "--force")
    assert result.exit_code == 0, result.output
    assert read_data(home) == stored
    (aside,) = (home / "backups").glob("pre-restore-*")
    assert (aside / "vault.json").read_bytes() == old_vault
    assert (aside / "enclave.db").exists()
    (later_id,) = later
    assert (aside / "blobs" / later_id[:2] / later_id[2:4] / later_id).is_file()


def test_two_forced_restores_in_one_second_keep_both_copies(
    archive: tuple[Path, dict[str, bytes]],
    home: Path,
    passphrase_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FrozenClock:
            return cls(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    monkeypatch.setattr(backup_module, "datetime", FrozenClock)
    out, stored = archive
    for _ in range(2):
        result = run(
            "restore", out, "--home", home, "--passphrase-file", passphrase_file, "--force"
        )
        assert result.exit_code == 0, result.output
    assert read_data(home) == stored
    asides = sorted((home / "backups").glob("pre-restore-*"))
    assert len(asides) == 2
    assert all((a / "vault.json").exists() and (a / "enclave.db").exists() for a in asides)


def _flip_member_byte(out: Path, pick: str) -> None:
    with tarfile.open(out) as tar:
        members = [m for m in tar.getmembers() if m.name != "manifest.json"]
    member = next(
        m for m in members if m.name == pick or (pick == "blob" and m.name.startswith("blobs/"))
    )
    with out.open("r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("member", ["enclave.db", "vault.json", "blob"])
def test_tampered_backup_is_refused_and_target_untouched(
    archive: tuple[Path, dict[str, bytes]],
    passphrase_file: Path,
    tmp_path: Path,
    member: str,
) -> None:
    out, _ = archive
    _flip_member_byte(out, member)
    target = tmp_path / "target"
    run("init", "--home", target, "--passphrase-file", passphrase_file)
    own = put_data(target, b"the target's own data")
    snapshot = {p: p.read_bytes() for p in target.rglob("*") if p.is_file() and p.name != ".lock"}
    result = run("restore", out, "--home", target, "--passphrase-file", passphrase_file, "--force")
    expect_error(result, "backup_invalid")
    assert "checksum" in result.stderr
    after = {p: p.read_bytes() for p in target.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == snapshot
    assert read_data(target) == own


# --- doctor ---------------------------------------------------------------------------------


def _doctor_lines(result: Result) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def test_doctor_healthy_home(home: Path, passphrase_file: Path) -> None:
    result = run("doctor", "--home", home, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output
    status = _doctor_lines(result)
    for name in ("home", "vault", "database", "integrity", "schema", "disk"):
        assert status[name] == "ok", result.stdout
    assert any(n.startswith("sandbox:") and s == "ok" for n, s in status.items())
    assert any(n.startswith("model:") and s == "ok" for n, s in status.items())


def test_doctor_fails_without_database(home: Path) -> None:
    (home / "enclave.db").unlink()
    result = run("doctor", "--home", home)
    assert result.exit_code == 1
    assert _doctor_lines(result)["database"] == "fail"
    assert "problem(s) found" in result.stderr


def test_doctor_warns_about_vault_mode(home: Path) -> None:
    (home / "vault.json").chmod(0o644)
    result = run("doctor", "--home", home)
    assert result.exit_code == 0, result.output
    vault_line = next(line for line in result.stdout.splitlines() if line.split()[1] == "vault")
    assert vault_line.startswith("warn")
    assert "chmod 600" in vault_line


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://[::1]:9000"),
        ("::1", "http://[::1]:9000"),
        ("enclave.example.org", "http://enclave.example.org:9000"),
    ],
)
def test_server_url_reaches_the_local_server(host: str, expected: str, tmp_path: Path) -> None:
    from appliance.cli.common import server_url

    settings = make_settings(tmp_path, host=host, port=9000)
    assert server_url(settings, None) == expected
    assert server_url(settings, "http://other.example.com:1") == "http://other.example.com:1"
