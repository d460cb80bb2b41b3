"""The appliance's key lifecycle: initialise, unseal, seal, change passphrase, rotate the data key.

States: ``uninitialised`` (no vault, no database) → ``sealed`` (data on disk, key not in memory)
→ ``unsealed`` (data key in memory, database open, migrations current).
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit import AuditLog, ensure_audit_key
from appliance.errors import (
    AlreadyInitialised,
    AlreadyUnsealed,
    DatabaseCorrupt,
    EnclaveError,
    KeyfileInvalid,
    NotInitialised,
    Sealed,
    StorageError,
    VaultMissing,
    WrongPassphrase,
)
from appliance.home import Home
from appliance.identity.models import User
from appliance.keys.attempts import UnsealAttempts
from appliance.keys.secret import DataKey, key_id_for
from appliance.keys.vault import (
    KdfParams,
    Vault,
    check_passphrase_policy,
    read_keyfile,
    write_keyfile,
)
from appliance.providers import rewrap as rewrap_provider_secrets
from appliance.runs import RunService, build_hub, build_runs
from appliance.runs.hub import ModelHub
from appliance.services import Services
from appliance.settings import EnclaveSettings
from appliance.store.blobs import BlobStore
from appliance.store.database import Database
from appliance.store.migrate import is_current, migrate
from appliance.store.schema import Installation
from engine.agents import AgentDefinition
from engine.tools.base import Tool

log = structlog.get_logger(__name__)


class State(StrEnum):
    UNINITIALISED = "uninitialised"
    SEALED = "sealed"
    UNSEALED = "unsealed"


def _blob_key(dek: DataKey) -> bytes:
    return dek.derive("blobs")


class Appliance:
    """One Enclave home and, once unsealed, its open database and blob store."""

    def __init__(self, settings: EnclaveSettings) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        self.attempts = UnsealAttempts(self.home.attempts_path, settings.unseal_max_attempts)
        self._lock = threading.RLock()
        self._dek: DataKey | None = None
        self._db: Database | None = None
        self._blobs: BlobStore | None = None
        self._audit_key: bytes | None = None
        self._services: Services | None = None
        self._services_key: bytes | None = None
        # Loaded models outlive a rekey; runs are rebuilt with the services they use.
        self._hub: ModelHub | None = None
        self._runs: RunService | None = None
        # The server sets this (create_app): unfinished background jobs resume at unseal. A CLI
        # command that unseals leaves it off, so it never runs a second ingestion worker.
        self.resume_jobs_at_unseal = False

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the appliance is in its lifecycle."""
        if self._dek is not None:
            return State.UNSEALED
        if self.home.vault_path.exists() or self.home.db_path.exists():
            return State.SEALED
        return State.UNINITIALISED

    @property
    def db(self) -> Database:
        """The open database; :class:`Sealed` while sealed."""
        if self._db is None:
            raise Sealed()
        return self._db

    @property
    def blobs(self) -> BlobStore:
        """The open blob store; :class:`Sealed` while sealed."""
        if self._blobs is None:
            raise Sealed()
        return self._blobs

    @property
    def audit(self) -> AuditLog:
        """The audit log (its key survives a rekey); :class:`Sealed` while sealed."""
        if self._db is None or self._audit_key is None:
            raise Sealed()
        return AuditLog(self._db, self._audit_key)

    @property
    def services(self) -> Services:
        """Users, groups, API keys, tokens and audit; :class:`Sealed` while sealed. Built once
        per unseal (and per data key: the token signing key derives from it)."""
        if self._db is None or self._dek is None or self._audit_key is None:
            raise Sealed()
        if self._services is None or self._services_key != self._dek.key_id:
            self._close_services()
            self._services = Services.build(self._db, self._dek, self._audit_key, self.settings)
            self._services_key = self._dek.key_id
        return self._services

    def _flush_search_log(self) -> None:
        """The knowledge searches queued for the search log are written before the database
        closes (sealing succeeds whatever the database says)."""
        # Imported here: the knowledge runtime is built over this module's Appliance.
        from appliance.knowledge.runtime import flush_search_log

        try:
            flush_search_log(self)
        except Exception:
            log.warning("knowledge.search_log_not_written", exc_info=True)

    def _close_services(self) -> None:
        """Stop the services' background work (the daily license check) and drop them."""
        services, self._services = self._services, None
        if services is not None:
            services.close()

    def cached_services(self) -> Services | None:
        """The services if built for the current key (no database work), else None: lets the
        web layer skip a thread hop on every request."""
        if self._dek is None or self._services_key != self._dek.key_id:
            return None
        return self._services

    @property
    def runs(self) -> RunService:
        """Agent runs and the models they use; :class:`Sealed` while sealed."""
        services = self.services
        with self._lock:
            if self._runs is None or self._runs.services is not services:
                if self._hub is None:
                    self._hub = build_hub(lambda: self.services, self.settings, self.home)
                self._runs = build_runs(services, self.settings, self.home, self._hub)
                self._runs.user_tools = self._knowledge_tools
            return self._runs

    def _knowledge_tools(self, user: User, definition: AgentDefinition) -> list[Tool]:
        """The ``knowledge_search`` tool for an agent that enables it, searching as ``user``
        over the agent's bases (all the user may use when it names none)."""
        if "knowledge_search" not in definition.tool_names():
            return []
        # Imported here: the knowledge runtime is built over this module's Appliance.
        from appliance.knowledge.runtime import knowledge_runtime
        from appliance.knowledge.tool_backend import knowledge_tool

        searcher = knowledge_runtime(self).searcher
        return [knowledge_tool(searcher, user, list(definition.knowledge_bases) or None)]

    def current_key(self) -> DataKey:
        """The data key in memory (for backups); :class:`Sealed` while sealed."""
        if self._dek is None:
            raise Sealed()
        return self._dek

    def kdf_params(self) -> KdfParams:
        """Argon2id parameters for new passphrase slots, from settings."""
        s = self.settings
        return KdfParams(s.kdf_time_cost, s.kdf_memory_kib, s.kdf_parallelism)

    def readiness(self) -> dict[str, Any]:
        """What /readyz reports: unsealed, database reachable, migrations current."""
        checks: dict[str, bool] = {"unsealed": self.state is State.UNSEALED}
        if self._db is not None:
            try:
                self._db.verify_key()
                checks["database"] = True
                checks["migrations"] = is_current(self._db)
            except EnclaveError:
                checks["database"] = False
                checks["migrations"] = False
        else:
            checks["database"] = checks["migrations"] = False
        return {"ready": all(checks.values()), "state": self.state.value, "checks": checks}

    # --- initialise -------------------------------------------------------------------------

    def initialise(
        self, passphrase: str, keyfile_out: Path | None = None, *, actor: str | None = None
    ) -> None:
        """First start: create the data key, vault, database and blob store; leaves it unsealed.

        The vault is written last, so a failure part-way leaves an uninitialised home.
        """
        with self._lock:
            if self.state is not State.UNINITIALISED:
                raise AlreadyInitialised()
            check_passphrase_policy(passphrase)
            self.home.ensure()
            dek = DataKey.generate()
            vault = Vault.create(dek, passphrase, self.kdf_params())
            db: Database | None = None
            try:
                if keyfile_out is not None:
                    vault.set_keyfile(dek, write_keyfile(keyfile_out))
                if not self.settings.database_url:
                    # Created 0600 before SQLite opens it; its -wal/-shm files inherit the mode.
                    os.close(
                        os.open(self.home.db_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                    )
                db = self._open_database(dek)
                migrate(db, dek, self.home.backups_dir)
                audit = AuditLog(db, audit_key := secrets.token_bytes(32))

                def install(s: Session) -> None:
                    s.add(
                        Installation(
                            id=1,
                            installation_id=str(uuid.uuid4()),
                            blob_address_key=secrets.token_bytes(32),
                            audit_key=audit_key,
                        )
                    )
                    details = {"keyfile": keyfile_out is not None}
                    audit.append(s, action="init", actor=actor, details=details)

                db.run_write(install)
                vault.save(self.home.vault_path)
            except BaseException:
                if db is not None:
                    db.dispose()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.home.db_path}{suffix}").unlink(missing_ok=True)
                raise
            self._activate(dek, db, extra_keys=[])
            log.info(
                "appliance.initialised", home=str(self.home.root), keyfile=keyfile_out is not None
            )

    # --- unseal / seal ----------------------------------------------------------------------

    def unseal(
        self,
        passphrase: str | None = None,
        keyfile: Path | None = None,
        *,
        actor: str | None = None,
        source_ip: str | None = None,
    ) -> None:
        """Open the vault with the passphrase (or key file), the database and the blob store.

        Failed attempts cannot be audited while sealed (the database is encrypted); the next
        successful unseal records how many there were as ``failed_attempts_before``.
        """
        with self._lock:
            state = self.state
            if state is State.UNSEALED:
                raise AlreadyUnsealed()
            if state is State.UNINITIALISED:
                raise NotInitialised()
            if not self.home.vault_path.exists():
                raise VaultMissing()
            self.attempts.check()
            vault = Vault.load(self.home.vault_path)
            kek: bytes | None = None
            try:
                if passphrase is not None:
                    dek = vault.unwrap_with_passphrase(passphrase)
                elif keyfile is not None:
                    kek = read_keyfile(keyfile)
                    dek = vault.unwrap_with_keyfile(kek)
                else:
                    raise WrongPassphrase("A passphrase or key file is needed to unseal.")
            except (WrongPassphrase, KeyfileInvalid):
                count = self.attempts.record_failure()
                log.warning("unseal.failed", failed_attempts=count)
                raise
            pending = vault.unwrap_pending(passphrase, kek)
            opened, db = self._open_with_rotation(dek, pending)
            try:
                migrate(db, opened, self.home.backups_dir)
                # During an interrupted rotation blobs may be under either key: keep both.
                extra = [k for k in (dek, pending) if k is not None and k != opened]
                self._activate(opened, db, extra_keys=extra)
                method = "passphrase" if passphrase is not None else "keyfile"
                failed = self.attempts.failed
                details = {"method": method, "failed_attempts_before": failed}
                self.audit.record(
                    action="unseal", actor=actor, source_ip=source_ip, details=details
                )
            except BaseException:
                db.dispose()
                self._dek = self._db = self._blobs = self._audit_key = None
                raise
            if pending is not None:
                self._finish_rotation(vault, pending)
            self.attempts.reset()
            log.info("unseal.ok", method=method)
        if self.resume_jobs_at_unseal:
            self.resume_background_jobs()

    def resume_background_jobs(self) -> None:
        """Resume interrupted knowledge ingestion now, not at the first knowledge request. A
        failure here leaves the appliance unsealed: it is logged, and the jobs resume at the
        first knowledge request instead."""
        # Imported here: the knowledge runtime is built over this module's Appliance.
        from appliance.knowledge.runtime import resume_pending

        try:
            resume_pending(self)
        except Exception:  # unsealing has succeeded; a background part must not undo it
            log.exception("knowledge.resume_failed")

    def unseal_from_settings(self) -> bool:
        """Unattended unseal with ``ENCLAVE_UNSEAL_KEYFILE`` when configured; True if unsealed."""
        if self.settings.unseal_keyfile is None or self.state is not State.SEALED:
            return False
        self.unseal(keyfile=self.settings.unseal_keyfile, actor="system")
        return True

    def seal(self, *, actor: str | None = None, record: bool = True) -> None:
        """Drop the data key and close the database (the appliance answers 503 `sealed`)."""
        with self._lock:
            self._close_services()  # its background check must not outlive the database
            if self._db is not None:
                self._flush_search_log()
                if record and self._audit_key is not None:
                    try:
                        self.audit.record(action="seal", actor=actor)
                    except Exception:  # sealing must succeed whatever the database says
                        log.warning("audit.seal_not_recorded", exc_info=True)
                self._db.dispose()
            if self._runs is not None:
                self._runs.cancel_all()
            if self._hub is not None:
                self._hub.terminate()
            self._runs = None
            self._hub = None
            self._db = None
            self._blobs = None
            self._dek = None
            self._audit_key = None
            log.info("appliance.sealed")

    # --- key changes ------------------------------------------------------------------------

    def change_passphrase(self, old: str, new: str, *, actor: str | None = None) -> None:
        """Re-wrap the data key under a new passphrase; the data is untouched."""
        with self._lock:
            vault = Vault.load(self.home.vault_path)
            self.attempts.check()
            try:
                dek = vault.unwrap_with_passphrase(old)
            except WrongPassphrase:
                self.attempts.record_failure()
                raise
            if vault.pending:
                raise StorageError(
                    "A key rotation is unfinished; unseal once to complete it first."
                )
            vault.set_passphrase(dek, new, self.kdf_params())
            vault.save(self.home.vault_path)
            # Audited only when unsealed: while sealed the database (and the log) is encrypted,
            # and `enclave passwd` works on the vault alone.
            if self._audit_key is not None:
                self.audit.record(action="passwd", actor=actor)
            log.info("vault.passphrase_changed")

    def add_keyfile(self, passphrase: str, out: Path, *, actor: str | None = None) -> None:
        """Create a key file that can unseal without the passphrase (for unattended servers)."""
        with self._lock:
            vault = Vault.load(self.home.vault_path)
            dek = vault.unwrap_with_passphrase(passphrase)
            vault.set_keyfile(dek, write_keyfile(out))
            vault.save(self.home.vault_path)
            if self._audit_key is not None:  # as for passwd: not auditable while sealed
                self.audit.record(action="keyfile.create", actor=actor)
            log.info("vault.keyfile_added")

    def rekey(
        self, passphrase: str, keyfile: Path | None = None, *, actor: str | None = None
    ) -> str:
        """Rotate the data key: new key pending in the vault → blobs → database → promote.

        Each step is recorded so an interruption is completed at the next unseal. Returns the
        new key id (hex).
        """
        with self._lock:
            if self._dek is None:
                raise Sealed()
            vault = Vault.load(self.home.vault_path)
            if vault.unwrap_with_passphrase(passphrase) != self._dek:
                raise DatabaseCorrupt("The vault does not hold the key this appliance is using.")
            kek = read_keyfile(keyfile) if keyfile is not None else None
            if kek is not None and vault.has_keyfile():
                # A foreign key file would otherwise replace the slot and lock out the real one.
                vault.unwrap_with_keyfile(kek)
            new = DataKey.generate()
            vault.begin_rotation(new, passphrase, self.kdf_params(), kek)
            vault.save(self.home.vault_path)
            self.blobs.keys[key_id_for(_blob_key(new))] = _blob_key(new)
            self._finish_rotation(vault, new)
            self.audit.record(action="rekey", actor=actor, details={"key_id": new.key_id.hex()})
            log.info("vault.rekeyed", key_id=new.key_id.hex())
            return new.key_id.hex()

    # --- internals --------------------------------------------------------------------------

    def _open_database(self, dek: DataKey) -> Database:
        return Database(
            path=self.home.db_path,
            dek=dek,
            url=self.settings.database_url,
            busy_timeout_ms=self.settings.db_busy_timeout_ms,
        )

    def _open_with_rotation(
        self, dek: DataKey, pending: DataKey | None
    ) -> tuple[DataKey, Database]:
        """Open the database with the current key, or with the pending one after an interrupted
        rekey that had already re-encrypted the database."""
        db = self._open_database(dek)
        try:
            db.verify_key()
            return dek, db
        except DatabaseCorrupt:
            db.dispose()
            if pending is None:
                raise
        db = self._open_database(pending)
        db.verify_key()
        return pending, db

    def _activate(self, dek: DataKey, db: Database, extra_keys: list[DataKey]) -> None:
        with db.read() as session:
            inst = session.scalar(select(Installation).where(Installation.id == 1))
        if inst is None:
            raise DatabaseCorrupt("The database has no installation record.")
        keys = {key_id_for(_blob_key(dek)): _blob_key(dek)}
        for extra in extra_keys:
            keys[key_id_for(_blob_key(extra))] = _blob_key(extra)
        blobs = BlobStore(
            self.home.blobs_dir, keys, key_id_for(_blob_key(dek)), inst.blob_address_key
        )
        removed = blobs.cleanup_partial()
        if removed:
            log.info("blobs.partial_removed", count=removed)
        self._audit_key = inst.audit_key or ensure_audit_key(db)
        self._dek, self._db, self._blobs = dek, db, blobs
        self._close_services()

    def _finish_rotation(self, vault: Vault, new: DataKey) -> None:
        new_blob_id = key_id_for(_blob_key(new))
        self.blobs.keys[new_blob_id] = _blob_key(new)
        moved = sum(
            1 for blob_id in self.blobs.iter_ids() if self.blobs.reencrypt(blob_id, new_blob_id)
        )
        if self._dek != new:
            if self._dek is not None:
                # Endpoint API keys are sealed under a subkey of the data key; rows already
                # moved (an interrupted rekey) are skipped, so this may run twice.
                rewrap_provider_secrets(self.db, self._dek, new)
            self.db.rekey(new)
            self._db = self._open_database(new)
            self._db.verify_key()
        vault.finish_rotation()
        vault.save(self.home.vault_path)
        self.blobs.current_key_id = new_blob_id
        for key_id in [k for k in self.blobs.keys if k != new_blob_id]:
            del self.blobs.keys[key_id]
        self._dek = new
        log.info("vault.rotation_finished", blobs_reencrypted=moved)
