"""Endpoint API keys encrypted with the data key (AES-256-GCM), on top of SQLCipher.

The cipher key is a subkey of the data key (``DataKey.derive("provider-api-keys")``); a sealed
value is ``key id (8) | nonce (12) | ciphertext+tag`` with the endpoint id as associated data,
so a sealed key copied onto another endpoint's row does not open. ``rewrap`` moves the values
onto a new data key during a rekey.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from appliance.errors import ProviderSecretUnreadable
from appliance.keys.secret import DataKey, key_id_for
from appliance.providers.models import ProviderEndpoint
from appliance.store.database import Database

PURPOSE = "provider-api-keys"


def _aad(endpoint_id: str) -> bytes:
    return f"enclave-provider-key-v1:{endpoint_id}".encode()


def seal(dek: DataKey, endpoint_id: str, api_key: str) -> bytes:
    """Encrypt ``api_key`` for the endpoint ``endpoint_id``."""
    key = dek.derive(PURPOSE)
    nonce = secrets.token_bytes(12)
    return key_id_for(key) + nonce + AESGCM(key).encrypt(nonce, api_key.encode(), _aad(endpoint_id))


def unseal(dek: DataKey, endpoint_id: str, sealed: bytes) -> str:
    """Decrypt a sealed API key, or :class:`ProviderSecretUnreadable`."""
    key = dek.derive(PURPOSE)
    if len(sealed) < 20 + 16 or sealed[:8] != key_id_for(key):
        raise ProviderSecretUnreadable(endpoint=endpoint_id)
    try:
        plain = AESGCM(key).decrypt(sealed[8:20], sealed[20:], _aad(endpoint_id))
    except InvalidTag as exc:
        raise ProviderSecretUnreadable(endpoint=endpoint_id) from exc
    return plain.decode()


def rewrap(db: Database, old: DataKey, new: DataKey) -> int:
    """Re-encrypt every API key sealed under ``old`` with ``new``; returns how many moved.

    Keys already under ``new`` are left alone, so running it twice is harmless.
    """
    old_id = key_id_for(old.derive(PURPOSE))
    moved = 0
    with db.write() as session:
        for row in session.scalars(select(ProviderEndpoint)):
            if row.api_key_sealed is None or row.api_key_sealed[:8] != old_id:
                continue
            row.api_key_sealed = seal(new, row.id, unseal(old, row.id, row.api_key_sealed))
            moved += 1
    return moved
