"""Signing: an Ed25519 key pair, licenses and vouchers, and the register of what was issued."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from appliance.licensing.document import (
    LicensePayload,
    VoucherPayload,
    canonical_json,
    envelope,
    key_id_of,
)

PRIVATE_NAME = "vendor-ed25519.key"
PUBLIC_NAME = "vendor-ed25519.pem"
REGISTER_NAME = "issued.jsonl"


def generate_keypair(directory: Path) -> str:
    """A new signing key in ``directory`` (private key mode 0600, public key PEM to ship with
    the appliance); returns the key id."""
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


class Issuer:
    """Signs with the key in ``directory`` and records every file issued in its register."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        key = load_pem_private_key((directory / PRIVATE_NAME).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the vendor key is not an Ed25519 private key")
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
    ) -> tuple[LicensePayload, bytes]:
        """A signed license (valid from now for ``days`` unless the dates are given). With
        ``evaluation_days`` it is an evaluation license: it can be started until its expiry
        date and runs ``evaluation_days`` from the moment an appliance starts it."""
        now = datetime.now(UTC).replace(microsecond=0)
        start = not_before or now
        payload = LicensePayload(
            license_id=license_id or f"lic-{uuid.uuid4().hex[:12]}",
            customer=customer,
            tier=tier,
            seats=seats,
            features=features,
            issued_at=now,
            not_before=start,
            expires_at=expires_at or start + timedelta(days=days),
            grace_days=grace_days,
            credits_once=credits_once,
            credits_monthly=credits_monthly,
            machine_id=machine_id,
            evaluation=evaluation_days is not None,
            evaluation_days=evaluation_days,
        )
        data = self.sign(payload.model_dump(mode="json"))
        self._record("license", payload.license_id, payload.model_dump(mode="json"))
        return payload, data

    def issue_voucher(
        self,
        license_id: str,
        credits: str,
        *,
        days: int | None = None,
        voucher_id: str | None = None,
    ) -> tuple[VoucherPayload, bytes]:
        """A signed single-use top-up for ``license_id``."""
        now = datetime.now(UTC).replace(microsecond=0)
        payload = VoucherPayload(
            voucher_id=voucher_id or f"vch-{uuid.uuid4().hex[:12]}",
            license_id=license_id,
            credits=credits,
            issued_at=now,
            expires_at=None if days is None else now + timedelta(days=days),
        )
        data = self.sign(payload.model_dump(mode="json"))
        self._record("voucher", payload.voucher_id, payload.model_dump(mode="json"))
        return payload, data

    def _record(self, kind: str, ident: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"kind": kind, "id": ident, "payload": payload}, sort_keys=True)
        with (self.directory / REGISTER_NAME).open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def issued(self) -> list[dict[str, Any]]:
        """Everything issued with this key directory, oldest first."""
        path = self.directory / REGISTER_NAME
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
