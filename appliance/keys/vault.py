"""vault.json: the data key wrapped by key-encryption keys (Vault-style seal/unseal).

Format (JSON, no secret in clear)::

    {"format": "enclave-vault", "version": 1, "key_id": "<hex>",
     "slots": {"passphrase": {"kdf": {...argon2id params + salt...}, "nonce": b64, "wrapped": b64},
               "keyfile":    {"nonce": b64, "wrapped": b64}},
     "pending": null | {"key_id": "<hex>", "slots": {...}}}

Each slot is AES-256-GCM(KEK, DEK) with the slot name and key id as associated data, so a slot
cannot be moved onto another key. ``pending`` holds the next data key during a rekey, so an
interrupted rotation can be finished at the next unseal.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import (
    KeyfileInvalid,
    KeyfileRequired,
    StorageError,
    VaultCorrupt,
    VaultMissing,
    WeakPassphrase,
    WrongPassphrase,
)
from appliance.keys.secret import DataKey
from appliance.store.files import atomic_write_bytes

FORMAT = "enclave-vault"
VERSION = 1
MIN_PASSPHRASE = 12
PASSPHRASE_SLOT = "passphrase"
KEYFILE_SLOT = "keyfile"


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters for a passphrase slot (stored beside the slot)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 2

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        """The 32-byte key-encryption key for this passphrase and salt."""
        return hash_secret_raw(
            passphrase.encode("utf-8"),
            salt,
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=32,
            type=Type.ID,
        )


def check_passphrase_policy(passphrase: str) -> None:
    """Length-based policy (NIST 800-63B style: long passphrases, no composition rules)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise WeakPassphrase()
    if len(passphrase) > 1024:
        raise WeakPassphrase("The passphrase must be at most 1024 characters long.")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise VaultCorrupt()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VaultCorrupt() from exc


def _aad(slot: str, key_id: bytes) -> bytes:
    return f"enclave-vault-v1:{slot}:{key_id.hex()}".encode()


def _wrap(kek: bytes, dek: DataKey, slot: str) -> dict[str, str]:
    nonce = secrets.token_bytes(12)
    wrapped = AESGCM(kek).encrypt(nonce, dek.raw, _aad(slot, dek.key_id))
    return {"nonce": _b64(nonce), "wrapped": _b64(wrapped)}


def _unwrap(kek: bytes, entry: dict[str, Any], slot: str, key_id: bytes) -> DataKey | None:
    nonce, wrapped = _unb64(entry.get("nonce")), _unb64(entry.get("wrapped"))
    if len(nonce) != 12:
        raise VaultCorrupt()
    try:
        raw = AESGCM(kek).decrypt(nonce, wrapped, _aad(slot, key_id))
    except InvalidTag:
        return None
    return DataKey(raw)


def read_keyfile(path: Path) -> bytes:
    """The 32-byte KEK in a key file; refuses a file readable by group or others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyfileInvalid(f"The key file {path} cannot be read.") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyfileInvalid(f"The key file {path} must be mode 0600 (it is {oct(mode & 0o777)}).")
    try:
        kek = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyfileInvalid(f"The key file {path} is not an Enclave key file.") from exc
    if len(kek) != 32:
        raise KeyfileInvalid(f"The key file {path} is not an Enclave key file.")
    return kek


def write_keyfile(path: Path) -> bytes:
    """Create a new random key file (mode 0600, refuses to overwrite) and return its KEK."""
    kek = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyfileInvalid(f"{path} already exists; refusing to overwrite a key file.") from exc
    except OSError as exc:
        raise StorageError(f"Cannot create the key file {path}: {exc.strerror}.") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(_b64(kek) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return kek


class Vault:
    """The wrapped data key(s) of one Enclave home."""

    def __init__(
        self, key_id: bytes, slots: dict[str, Any], pending: dict[str, Any] | None
    ) -> None:
        self.key_id = key_id
        self.slots = slots
        self.pending = pending

    # --- construction and persistence -------------------------------------------------------

    @classmethod
    def create(cls, dek: DataKey, passphrase: str, kdf: KdfParams) -> Vault:
        """A new vault holding ``dek`` behind ``passphrase``."""
        check_passphrase_policy(passphrase)
        vault = cls(dek.key_id, {}, None)
        vault.slots[PASSPHRASE_SLOT] = _passphrase_slot(dek, passphrase, kdf)
        return vault

    @classmethod
    def load(cls, path: Path) -> Vault:
        """Read vault.json; a missing or malformed file is a specific error."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise VaultMissing() from exc
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc.strerror}.") from exc
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VaultCorrupt() from exc
        if (
            not isinstance(doc, dict)
            or doc.get("format") != FORMAT
            or doc.get("version") != VERSION
        ):
            raise VaultCorrupt()
        slots, pending = doc.get("slots"), doc.get("pending")
        if not isinstance(slots, dict) or PASSPHRASE_SLOT not in slots:
            raise VaultCorrupt()
        if pending is not None and not (
            isinstance(pending, dict) and isinstance(pending.get("slots"), dict)
        ):
            raise VaultCorrupt()
        return cls(_hex_id(doc.get("key_id")), slots, pending)

    def to_json(self) -> bytes:
        """The vault document as bytes (wrapped keys only)."""
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "key_id": self.key_id.hex(),
            "slots": self.slots,
            "pending": self.pending,
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"

    def save(self, path: Path) -> None:
        """Write vault.json atomically with mode 0600."""
        atomic_write_bytes(path, self.to_json(), mode=0o600)

    # --- unwrapping -------------------------------------------------------------------------

    def has_keyfile(self) -> bool:
        """Whether a key-file slot exists (unattended unseal)."""
        return KEYFILE_SLOT in self.slots

    def unwrap_with_passphrase(self, passphrase: str) -> DataKey:
        """The current data key; :class:`WrongPassphrase` if the passphrase does not open it."""
        dek = _open_passphrase_slot(self.slots, passphrase, self.key_id)
        if dek is None:
            raise WrongPassphrase()
        return dek

    def unwrap_with_keyfile(self, kek: bytes) -> DataKey:
        """The current data key from the key-file slot."""
        entry = self.slots.get(KEYFILE_SLOT)
        if not isinstance(entry, dict):
            raise KeyfileInvalid("This vault has no key-file slot; unseal with the passphrase.")
        dek = _unwrap(kek, entry, KEYFILE_SLOT, self.key_id)
        if dek is None or dek.key_id != self.key_id:
            raise KeyfileInvalid("The key file does not belong to this vault.")
        return dek

    def unwrap_pending(self, passphrase: str | None, kek: bytes | None) -> DataKey | None:
        """The next data key of an interrupted rekey, or None when no rotation is pending."""
        if not self.pending:
            return None
        key_id = _hex_id(self.pending.get("key_id"))
        slots = self.pending["slots"]
        if passphrase is not None:
            dek = _open_passphrase_slot(slots, passphrase, key_id)
        elif kek is not None and isinstance(slots.get(KEYFILE_SLOT), dict):
            dek = _unwrap(kek, slots[KEYFILE_SLOT], KEYFILE_SLOT, key_id)
        else:
            dek = None
        if dek is None:
            raise VaultCorrupt("The pending key of an interrupted rekey cannot be opened.")
        return dek

    # --- changes (each returns nothing and mutates; callers save) ----------------------------

    def set_passphrase(self, dek: DataKey, passphrase: str, kdf: KdfParams) -> None:
        """Re-wrap the data key under a new passphrase (fresh salt)."""
        check_passphrase_policy(passphrase)
        self.slots[PASSPHRASE_SLOT] = _passphrase_slot(dek, passphrase, kdf)

    def set_keyfile(self, dek: DataKey, kek: bytes) -> None:
        """Add or replace the key-file slot."""
        self.slots[KEYFILE_SLOT] = _wrap(kek, dek, KEYFILE_SLOT)

    def remove_keyfile(self) -> None:
        """Drop the key-file slot (the passphrase stays the way in)."""
        self.slots.pop(KEYFILE_SLOT, None)

    def begin_rotation(
        self, new: DataKey, passphrase: str, kdf: KdfParams, kek: bytes | None
    ) -> None:
        """Record the next data key as pending, wrapped like the current one."""
        if self.has_keyfile() and kek is None:
            raise KeyfileRequired()
        slots = {PASSPHRASE_SLOT: _passphrase_slot(new, passphrase, kdf)}
        if kek is not None and self.has_keyfile():
            slots[KEYFILE_SLOT] = _wrap(kek, new, KEYFILE_SLOT)
        self.pending = {"key_id": new.key_id.hex(), "slots": slots}

    def finish_rotation(self) -> None:
        """Promote the pending key to current."""
        if not self.pending:
            return
        self.key_id = _hex_id(self.pending["key_id"])
        self.slots = self.pending["slots"]
        self.pending = None


def _passphrase_slot(dek: DataKey, passphrase: str, kdf: KdfParams) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    slot: dict[str, Any] = _wrap(kdf.derive(passphrase, salt), dek, PASSPHRASE_SLOT)
    slot["kdf"] = {
        "name": "argon2id",
        "time_cost": kdf.time_cost,
        "memory_kib": kdf.memory_kib,
        "parallelism": kdf.parallelism,
        "salt": _b64(salt),
    }
    return slot


def _open_passphrase_slot(slots: dict[str, Any], passphrase: str, key_id: bytes) -> DataKey | None:
    entry = slots.get(PASSPHRASE_SLOT)
    if not isinstance(entry, dict) or not isinstance(entry.get("kdf"), dict):
        raise VaultCorrupt()
    spec = entry["kdf"]
    try:
        params = KdfParams(
            int(spec["time_cost"]), int(spec["memory_kib"]), int(spec["parallelism"])
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise VaultCorrupt() from exc
    if (
        spec.get("name") != "argon2id"
        or not (1 <= params.time_cost <= 64)
        or not (8 <= params.memory_kib <= 4 * 1024 * 1024)
        or not (1 <= params.parallelism <= 64)
        # Argon2 itself refuses fewer than 8 KiB per lane (HashingError otherwise).
        or params.memory_kib < 8 * params.parallelism
    ):
        raise VaultCorrupt()
    salt = _unb64(spec.get("salt"))
    if len(salt) < 8:
        raise VaultCorrupt()
    dek = _unwrap(params.derive(passphrase, salt), entry, PASSPHRASE_SLOT, key_id)
    if dek is not None and dek.key_id != key_id:
        raise VaultCorrupt()
    return dek


def _hex_id(value: Any) -> bytes:
    if not isinstance(value, str):
        raise VaultCorrupt()
    try:
        key_id = bytes.fromhex(value)
    except ValueError as exc:
        raise VaultCorrupt() from exc
    if len(key_id) != 8:
        raise VaultCorrupt()
    return key_id
