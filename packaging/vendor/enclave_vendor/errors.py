"""Why the vendor tool refused: typed errors with a stable code (``error: <code>: <message>``).

Each is raised before anything is signed or written to the register, so a refused command
leaves the key folder as it was.
"""

from __future__ import annotations

from typing import ClassVar


class VendorError(Exception):
    """Bad input to the vendor tool; nothing was signed or recorded.

    Not an ``appliance.errors.EnclaveError``: those are the appliance's API errors (each with
    an HTTP status, listed in docs/api.md); these are only ever printed by ``enclave-vendor``.
    """

    code: ClassVar[str] = "vendor_error"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class InvalidOption(VendorError):
    """An option whose value would give a file the appliance refuses (or cannot represent)."""

    code = "invalid_option"


class KeysExist(VendorError):
    """``keygen`` into a folder that already holds a key or a register: never replaced."""

    code = "keys_exist"


class NoVendorKey(VendorError):
    """The key folder has no usable private key."""

    code = "no_vendor_key"


class LicenseIdTaken(VendorError):
    """A license id this key folder already issued (the appliance keys grants on it)."""

    code = "license_id_taken"


class UnknownLicense(VendorError):
    """A voucher for a license id the register never issued."""

    code = "unknown_license"


class RegisterDamaged(VendorError):
    """The register (``issued.jsonl``) has a line that is not an issued file."""

    code = "register_damaged"
