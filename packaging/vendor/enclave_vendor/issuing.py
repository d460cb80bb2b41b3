"""Signing: an Ed25519 key pair, licenses and vouchers, and the register of what was issued.

Every license and voucher is built as the appliance's own payload model first
(:mod:`appliance.licensing.document`), so an option the appliance would refuse (0 seats, a
malformed id, credits past what it can hold, an expiry before the start) is refused here with
:class:`~enclave_vendor.errors.InvalidOption` before anything is signed or recorded.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import BaseModel, ValidationError

from appliance.licensing.document import (
    LicensePayload,
    VoucherPayload,
    canonical_json,
    envelope,
    key_id_of,
)
from enclave_vendor.errors import (
    InvalidOption,
    KeysExist,
    LicenseIdTaken,
    NoVendorKey,
    RegisterDamaged,
    UnknownLicense,
)

PRIVATE_NAME = "vendor-ed25519.key"
PUBLIC_NAME = "vendor-ed25519.pem"
REGISTER_NAME = "issued.jsonl"
# A hundred years: a longer term is a typo (and a few million days overflow any date).
MAX_DAYS = 36_525
# The command-line option that sets each payload field (the rest are ``--<field-name>``).
OPTIONS = {
    "expires_at": "--days",
    "features": "--feature",
    "min_prices": "--min-price",
    "": "the license",
}
M = TypeVar("M", bound=BaseModel)


def generate_keypair(directory: Path) -> str:
    """A new signing key in ``directory`` (private key mode 0600, public key PEM to ship with
    the appliance); returns the key id. Never replaces a key or a register already there."""
    if directory.exists() and not directory.is_dir():
        raise InvalidOption(f"--keys {directory} is a file, not a folder.")
    present = [n for n in (PRIVATE_NAME, PUBLIC_NAME, REGISTER_NAME) if (directory / n).exists()]
    if present:
        raise KeysExist(
            f"{directory} already holds {', '.join(present)}: keygen never replaces a vendor "
            "key (the files signed with it could no longer be checked). Use a new folder."
        )
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(directory / PRIVATE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = private.public_key()
    (directory / PUBLIC_NAME).write_bytes(
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return key_id_of(public)


def option_of(field: str) -> str:
    """The option (or thing) a payload field comes from, for error messages."""
    return OPTIONS.get(field, "--" + field.replace("_", "-"))


def validated(model: type[M], fields: dict[str, Any]) -> M:
    """``fields`` as ``model``, or InvalidOption naming the option at fault."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ("",)
        option = option_of(str(loc[0]))
        if first["type"] == "string_pattern_mismatch":
            raise InvalidOption(
                f"{option} {first['input']!r}: an id is 1 to 64 letters, digits, '.', '_' or "
                "'-', starting with a letter or a digit."
            ) from exc
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = first.get("input")
        if isinstance(shown, str | int) and str(shown) not in message:
            option = f"{option} {shown!r}"
        raise InvalidOption(f"{option}: {message}.") from exc


def _days_later(start: datetime, days: int) -> datetime:
    if not -MAX_DAYS <= days <= MAX_DAYS:
        raise InvalidOption(f"--days {days}: at most {MAX_DAYS:,} days.")
    return start + timedelta(days=days)


class Issuer:
    """Signs with the key in ``directory`` and records every file issued in its register."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        path = directory / PRIVATE_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NoVendorKey(
                f"{path} does not exist: point --keys at the folder made by `enclave-vendor "
                "keygen`."
            ) from exc
        except OSError as exc:
            raise NoVendorKey(f"{path} cannot be read ({exc.strerror}).") from exc
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise NoVendorKey(f"{path} is not a PEM private key without a password.") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise NoVendorKey(f"{path} is not an Ed25519 private key.")
        self._key = key
        self.key_id = key_id_of(key.public_key())

    def sign(self, payload: dict[str, Any]) -> bytes:
        """The file bytes for ``payload`` (any dict: tests sign malformed ones too)."""
        return envelope(self.key_id, payload, self._key.sign(canonical_json(payload)))

    def issue_license(
        self,
        *,
        customer: str,
        tier: str = "team",
        seats: int = 10,
        features: tuple[str, ...] = (),
        days: int = 365,
        grace_days: int = 14,
        credits_once: str = "0",
        credits_monthly: str = "0",
        machine_id: str | None = None,
        license_id: str | None = None,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
        evaluation_days: int | None = None,
        min_prices: dict[str, dict[str, str]] | None = None,
        out: Path | None = None,
    ) -> tuple[LicensePayload, bytes]:
        """A signed license (valid from now for ``days`` unless the dates are given). With
        ``evaluation_days`` it is an evaluation license: it can be started until its expiry
        date and runs ``evaluation_days`` from the moment an appliance starts it. Written to
        ``out`` (when given) before it is recorded; InvalidOption or LicenseIdTaken before
        anything is signed."""
        now = datetime.now(UTC).replace(microsecond=0)
        start = not_before or now
        if expires_at is None:
            if days < 1:
                raise InvalidOption(
                    f"--days {days}: a license runs at least one day (it would expire before "
                    "it starts, and the appliance refuses it)."
                )
            expires_at = _days_later(start, days)
        if expires_at <= start:
            raise InvalidOption("the license would expire before it starts.")
        payload = validated(
            LicensePayload,
            {
                "license_id": license_id or f"lic-{uuid.uuid4().hex[:12]}",
                "customer": customer,
                "tier": tier,
                "seats": seats,
                "features": features,
                "issued_at": now,
                "not_before": start,
                "expires_at": expires_at,
                "grace_days": grace_days,
                "credits_once": credits_once,
                "credits_monthly": credits_monthly,
                "machine_id": machine_id,
                "evaluation": evaluation_days is not None,
                "evaluation_days": evaluation_days,
                "min_prices": min_prices or {},
            },
        )
        if payload.license_id in self.issued_license_ids():
            raise LicenseIdTaken(
                f"License {payload.license_id} was already issued with these keys "
                "(`enclave-vendor list`); a renewal gets a new id."
            )
        return payload, self._issue("license", payload.license_id, payload, out)

    def issue_voucher(
        self,
        license_id: str,
        credits: str,
        *,
        days: int | None = None,
        voucher_id: str | None = None,
        require_issued_license: bool = False,
        out: Path | None = None,
    ) -> tuple[VoucherPayload, bytes]:
        """A signed single-use top-up for ``license_id`` (with ``require_issued_license``, only
        for a license in this register: UnknownLicense otherwise). Written to ``out`` (when
        given) before it is recorded."""
        now = datetime.now(UTC).replace(microsecond=0)
        payload = validated(
            VoucherPayload,
            {
                "voucher_id": voucher_id or f"vch-{uuid.uuid4().hex[:12]}",
                "license_id": license_id,
                "credits": credits,
                "issued_at": now,
                "expires_at": None if days is None else _days_later(now, days),
            },
        )
        if require_issued_license and payload.license_id not in self.issued_license_ids():
            raise UnknownLicense(
                f"License {payload.license_id} was never issued with these keys "
                "(`enclave-vendor list`); check the id, or pass --force-unknown-license if the "
                "register was lost."
            )
        return payload, self._issue("voucher", payload.voucher_id, payload, out)

    def _issue(self, kind: str, ident: str, payload: BaseModel, out: Path | None) -> bytes:
        """Sign, write ``out`` (when given), then record: a file that could not be written is
        not in the register."""
        body = payload.model_dump(mode="json")
        data = self.sign(body)
        if out is not None:
            out.write_bytes(data)
        line = json.dumps({"kind": kind, "id": ident, "payload": body}, sort_keys=True)
        with (self.directory / REGISTER_NAME).open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return data

    def issued(self) -> list[dict[str, Any]]:
        """Everything issued with this key directory, oldest first."""
        path = self.directory / REGISTER_NAME
        if not path.exists():
            return []
        rows = []
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RegisterDamaged(f"{path}, line {number}, is not JSON.") from exc
            if not isinstance(row, dict) or not isinstance(row.get("payload"), dict):
                raise RegisterDamaged(f"{path}, line {number}, is not an issued file.")
            rows.append(row)
        return rows

    def issued_license_ids(self) -> set[str]:
        """The ids of the licenses in the register."""
        return {str(row.get("id")) for row in self.issued() if row.get("kind") == "license"}
