"""Key hierarchy: a random data key (DEK) wrapped by passphrase- or key-file-derived KEKs."""

from appliance.keys.secret import DataKey, key_id_for
from appliance.keys.vault import KdfParams, Vault

__all__ = ["DataKey", "KdfParams", "Vault", "key_id_for"]
