"""In-memory key material that never prints itself."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def key_id_for(key: bytes) -> bytes:
    """A non-secret 8-byte identifier of a key (HMAC of a constant under the key)."""
    return hmac.new(key, b"enclave-key-id", hashlib.sha256).digest()[:8]


class DataKey:
    """A 256-bit data key. ``repr``/``str`` are redacted so it cannot leak into logs or tracebacks."""

    __slots__ = ("_id", "_raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("a data key is exactly 32 bytes")
        self._raw = bytes(raw)
        self._id = key_id_for(self._raw)  # checked on every request: computed once

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh random key from the OS CSPRNG."""
        return cls(secrets.token_bytes(32))

    @property
    def raw(self) -> bytes:
        """The key bytes; pass them straight to a cipher, never to a log or a file."""
        return self._raw

    @property
    def key_id(self) -> bytes:
        """The key's public identifier (see :func:`key_id_for`)."""
        return self._id

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey for one purpose (HMAC-SHA256 as a PRF), so keys are never reused."""
        return hmac.new(self._raw, b"enclave-subkey:" + purpose.encode(), hashlib.sha256).digest()

    def sqlcipher_pragma_value(self) -> str:
        """SQLCipher's raw-key literal ``x'<hex>'`` (hex of our own bytes: safe to inline)."""
        return f"x'{self._raw.hex()}'"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataKey) and hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"DataKey(id={self.key_id.hex()}, <redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("DataKey cannot be pickled")
