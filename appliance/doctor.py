"""`enclave doctor`: check what the appliance needs and explain each problem in one line."""

from __future__ import annotations

import shutil
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from appliance.errors import EnclaveError, ModelFileMissing
from appliance.home import Home
from appliance.keys.vault import Vault, read_keyfile
from appliance.lifecycle import Appliance
from appliance.model_files import catalog_for, resolve_model_file
from appliance.store.migrate import is_current
from models import sha256_file
from sandbox import detect_backends

SQLITE_PLAINTEXT_HEADER = b"SQLite format 3\x00"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One doctor finding."""

    name: str
    status: Status
    detail: str


def _mode_check(name: str, path: Path, allowed: int) -> Check:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~allowed:
        return Check(
            name, Status.WARN, f"{path} is mode {oct(mode)}; run: chmod {oct(allowed)[2:]} {path}"
        )
    return Check(name, Status.OK, f"{path} is mode {oct(mode)}")


def check_home(home: Home) -> list[Check]:
    """Home exists, is writable, and is private to the service user."""
    if not home.root.exists():
        return [Check("home", Status.FAIL, f"{home.root} does not exist; run `enclave init`")]
    try:
        home.check_writable()
    except EnclaveError as exc:
        return [Check("home", Status.FAIL, exc.message)]
    return [_mode_check("home", home.root, 0o700)]


def check_vault(home: Home, keyfile: Path | None) -> list[Check]:
    """vault.json parses and is 0600; the unseal key file (if set) is valid and 0600."""
    if not home.vault_path.exists():
        return [
            Check(
                "vault",
                Status.FAIL,
                "vault.json is missing; run `enclave init` or restore a backup",
            )
        ]
    checks = []
    try:
        vault = Vault.load(home.vault_path)
        checks.append(_mode_check("vault", home.vault_path, 0o600))
        if vault.pending:
            checks.append(
                Check("vault", Status.WARN, "a key rotation is unfinished; unseal to complete it")
            )
    except EnclaveError as exc:
        checks.append(Check("vault", Status.FAIL, exc.message))
    if keyfile is not None:
        try:
            read_keyfile(keyfile)
            checks.append(Check("keyfile", Status.OK, f"{keyfile} is a valid key file, mode 0600"))
        except EnclaveError as exc:
            checks.append(Check("keyfile", Status.FAIL, exc.message))
    return checks


def check_database(appliance: Appliance, passphrase: str | None) -> list[Check]:
    """The file is encrypted (no SQLite header); with the passphrase: integrity and schema."""
    path = appliance.home.db_path
    if appliance.settings.database_url and not appliance.settings.database_url.startswith("sqlite"):
        return [Check("database", Status.OK, "external database configured (checked at unseal)")]
    if not path.exists():
        return [Check("database", Status.FAIL, f"{path} is missing; restore a backup")]
    with path.open("rb") as handle:
        if handle.read(16) == SQLITE_PLAINTEXT_HEADER:
            return [
                Check("database", Status.FAIL, f"{path} is NOT encrypted (plain SQLite header)")
            ]
    checks = [Check("database", Status.OK, f"{path} is encrypted")]
    if passphrase is None:
        checks.append(
            Check("integrity", Status.WARN, "skipped: pass --passphrase-file to check integrity")
        )
        return checks
    try:
        appliance.unseal(passphrase)
        result = appliance.db.integrity_check()
        current = is_current(appliance.db)
    except EnclaveError as exc:
        return [*checks, Check("integrity", Status.FAIL, exc.message)]
    finally:
        appliance.seal()
    if result != ["ok"]:
        checks.append(Check("integrity", Status.FAIL, f"PRAGMA integrity_check: {result[0]}"))
    else:
        checks.append(Check("integrity", Status.OK, "PRAGMA integrity_check: ok"))
    checks.append(
        Check(
            "schema",
            Status.OK if current else Status.FAIL,
            "migrations current" if current else "migrations pending",
        )
    )
    return checks


def check_disk(home: Home, min_free_mb: int) -> list[Check]:
    """Free space on the home's filesystem."""
    target = home.root if home.root.exists() else home.root.parent
    free_mb = shutil.disk_usage(target).free // (1024 * 1024)
    if free_mb < min_free_mb:
        return [
            Check(
                "disk", Status.WARN, f"{free_mb} MB free under {target} (want ≥ {min_free_mb} MB)"
            )
        ]
    return [Check("disk", Status.OK, f"{free_mb} MB free under {target}")]


def check_sandbox() -> list[Check]:
    """At least one isolation backend must start a process; each one is reported."""
    backends = detect_backends()
    checks = [
        Check(
            f"sandbox:{b.name}",
            Status.OK if b.usable else Status.WARN,
            f"{b.version or 'not found'}: {b.detail}"
            + (f"; {b.allowlist_detail}" if b.usable else ""),
        )
        for b in backends
    ]
    if not any(b.usable for b in backends):
        checks.append(
            Check(
                "sandbox",
                Status.FAIL,
                "no usable sandbox: install bubblewrap or firejail (`make run` does it)",
            )
        )
    return checks


def check_models(home: Home) -> list[Check]:
    """Each catalog model file is present and its sha256 matches the catalog."""
    try:
        catalog = catalog_for(home)
    except EnclaveError as exc:
        return [Check("models", Status.FAIL, exc.message)]
    checks = []
    for entry in catalog.entries.values():
        try:
            path = resolve_model_file(entry, home)
        except ModelFileMissing as exc:
            status = Status.FAIL if entry.id == catalog.default else Status.WARN
            checks.append(Check(f"model:{entry.id}", status, exc.message))
            continue
        digest = sha256_file(path)
        if digest != entry.sha256:
            checks.append(
                Check(
                    f"model:{entry.id}",
                    Status.FAIL,
                    f"{path} sha256 {digest[:12]}… does not match the catalog",
                )
            )
        else:
            checks.append(Check(f"model:{entry.id}", Status.OK, f"{path} sha256 verified"))
    return checks


def run_doctor(appliance: Appliance, passphrase: str | None = None) -> list[Check]:
    """All checks, in the order an operator would fix them."""
    settings = appliance.settings
    return [
        *check_home(appliance.home),
        *check_vault(appliance.home, settings.unseal_keyfile),
        *check_database(appliance, passphrase),
        *check_disk(appliance.home, settings.min_free_disk_mb),
        *check_sandbox(),
        *check_models(appliance.home),
    ]
