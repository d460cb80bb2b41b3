"""The vendor public keys a license or voucher must be signed with.

The appliance ships the vendor's key(s) as package data (``vendor_keys/*.pem``); the setting
``ENCLAVE_LICENSE_PUBLIC_KEYS`` points at another PEM file or a directory of them instead (tests
generate their own pair; a vendor rotating keys ships both for a while).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from appliance.errors import InvalidRequest
from appliance.licensing.document import key_id_of

SHIPPED_KEYS = Path(__file__).parent / "vendor_keys"


def load_vendor_keys(location: Path | None = None) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in ``location`` (a PEM file, or a directory of ``*.pem``), by
    key id; the shipped keys when ``location`` is None."""
    where = location or SHIPPED_KEYS
    files = sorted(where.glob("*.pem")) if where.is_dir() else [where]
    keys: dict[str, Ed25519PublicKey] = {}
    for path in files:
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"Cannot read the vendor public key {path}: {exc}.") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidRequest(f"The vendor public key {path} is not an Ed25519 key.")
        keys[key_id_of(key)] = key
    if not keys:
        raise InvalidRequest(f"No vendor public key found in {where}.")
    return keys
