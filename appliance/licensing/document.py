"""Signed license and voucher files: the payload models, the envelope and its verification.

A file is one line of canonical JSON (sorted keys, no spaces, ASCII) plus a newline::

    {"key_id":"<vendor key id>","payload":{...},"signature":"<base64 Ed25519 signature>"}

The signature covers the canonical JSON of ``payload``. The file must be byte-for-byte the
canonical form of what it holds, so *any* changed byte — in the payload, the signature, the key
id or even the white space — is rejected: either the bytes are no longer canonical, or the
signature no longer matches. The one exception is the line ending: a missing final newline or a
CRLF one (a paste box, a Windows editor) is normalised first, as it carries no meaning.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from typing import Any, Literal, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.licensing.errors import LicenseFileTooLarge, LicenseInvalid

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_FILE_BYTES = 64 * 1024
MICRO = 1_000_000
# The largest amount of credits anywhere (a price, a budget, a grant): its micro-credits, and
# sums of many of them, stay far inside SQLite's 64-bit integers.
MAX_CREDITS = 10**12
M = TypeVar("M", bound=BaseModel)


def canonical_json(value: Any) -> bytes:
    """The one byte form of ``value`` that is signed and stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short public identifier of a vendor key: the first 16 hex digits of its SHA-256."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def credits_to_micro(value: int | float | str | Decimal) -> int:
    """Credits (up to six decimals, at most :data:`MAX_CREDITS`) as integer micro-credits, the
    unit every sum is kept in; ValueError (naming the value) for anything else."""
    try:
        amount = Decimal(str(value).strip())
    except (DecimalException, ValueError) as exc:
        raise ValueError(f"{value!r} is not a number of credits") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite number of credits")
    if amount < 0 or amount > MAX_CREDITS:
        raise ValueError(f"credits are between 0 and {MAX_CREDITS:,}, not {value!r}")
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise ValueError("credits have at most six decimals")
    return int(micro)


def micro_to_credits(micro: int) -> float:
    """Integer micro-credits as credits (for display and JSON)."""
    return micro / MICRO


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone (UTC)")
    return value.astimezone(UTC)


# The classes of price a license can set a minimum for: ``local`` models, ``remote`` ones
# (every other provider) and ``tool`` seconds.
PRICE_CLASSES = ("local", "remote", "tool")


class PriceFloor(BaseModel):
    """The least an admin may charge for a class of use (credits, as strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1k: str = "0"
    output_per_1k: str = "0"
    per_second: str = "0"

    @field_validator("input_per_1k", "output_per_1k", "per_second")
    @classmethod
    def _credits(cls, value: str) -> str:
        credits_to_micro(value)
        return value

    def micro(self) -> tuple[int, int, int]:
        """The three minimums in micro-credits."""
        return (
            credits_to_micro(self.input_per_1k),
            credits_to_micro(self.output_per_1k),
            credits_to_micro(self.per_second),
        )


class LicensePayload(BaseModel):
    """What the vendor grants one customer; signed, never edited by the appliance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["license"] = "license"
    license_id: str = Field(pattern=ID_PATTERN)
    customer: str = Field(min_length=1, max_length=200)
    tier: str = Field(pattern=ID_PATTERN)
    seats: int = Field(ge=1, le=1_000_000)
    features: tuple[str, ...] = ()
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    grace_days: int = Field(14, ge=0, le=365)
    # Credits granted once at import, and at the start of every calendar month (UTC).
    credits_once: str = "0"
    credits_monthly: str = "0"
    # The least the admins' price table may charge per class (``local``/``remote``/``tool``):
    # the credits the vendor sells keep their meaning. Absent: no minimum.
    min_prices: dict[Literal["local", "remote", "tool"], PriceFloor] = Field(default_factory=dict)
    # The installation id this license is bound to (``enclave license show``); None: any.
    machine_id: str | None = None
    # An evaluation license (shipped in the package): ``expires_at`` is the last day it can be
    # *started*; once started it runs ``evaluation_days`` from its activation, once per home.
    evaluation: bool = False
    evaluation_days: int | None = Field(None, ge=1, le=366)

    @field_validator("issued_at", "not_before", "expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)

    @model_validator(mode="after")
    def _evaluation_has_days(self) -> LicensePayload:
        if self.evaluation != (self.evaluation_days is not None):
            raise ValueError("an evaluation license (and only one) carries evaluation_days")
        return self

    @field_validator("credits_once", "credits_monthly")
    @classmethod
    def _credits(cls, value: str) -> str:
        credits_to_micro(value)
        return value

    @property
    def once_micro(self) -> int:
        return credits_to_micro(self.credits_once)

    @property
    def monthly_micro(self) -> int:
        return credits_to_micro(self.credits_monthly)


class VoucherPayload(BaseModel):
    """A single-use top-up of credits, bound to one license."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["voucher"] = "voucher"
    voucher_id: str = Field(pattern=ID_PATTERN)
    license_id: str = Field(pattern=ID_PATTERN)
    credits: str
    issued_at: datetime
    expires_at: datetime | None = None

    @field_validator("issued_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)

    @field_validator("credits")
    @classmethod
    def _credits(cls, value: str) -> str:
        if credits_to_micro(value) <= 0:
            raise ValueError("a voucher carries a positive number of credits")
        return value

    @property
    def micro(self) -> int:
        return credits_to_micro(self.credits)


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def envelope(key_id: str, payload: dict[str, Any], signature: bytes) -> bytes:
    """The file bytes for a signed payload (what the vendor tool writes)."""
    body = {"key_id": key_id, "payload": payload, "signature": encode_signature(signature)}
    return canonical_json(body) + b"\n"


def normalised_file(data: bytes) -> bytes:
    """``data`` with its line ending made canonical (one ``\\n``): a paste that lost the final
    newline, or CRLF line endings, is the same file. Nothing else is changed."""
    return data.rstrip(b"\r\n") + b"\n"


def _open_envelope(data: bytes) -> tuple[str, dict[str, Any], bytes]:
    """The key id, payload and signature of a file that is exactly in canonical form (up to
    its line ending, see :func:`normalised_file`)."""
    if len(data) > MAX_FILE_BYTES:
        raise LicenseFileTooLarge(
            f"The file is too large to be a license or voucher ({len(data):,} bytes; the limit "
            f"is {MAX_FILE_BYTES:,} bytes)."
        )
    data = normalised_file(data)
    try:
        body = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays ("[[[[…") fit in the size limit.
        raise LicenseInvalid("The file is not a license or voucher (unreadable JSON).") from exc
    if not isinstance(body, dict) or set(body) != {"key_id", "payload", "signature"}:
        raise LicenseInvalid("The file is not a license or voucher (unexpected fields).")
    try:
        canonical = canonical_json(body) + b"\n"
    except RecursionError as exc:
        raise LicenseInvalid("The file is not a license or voucher (nested too deeply).") from exc
    if canonical != data:
        raise LicenseInvalid(
            "The file was altered: it is not byte-for-byte as the vendor signed it."
        )
    key_id, payload, sig_text = body["key_id"], body["payload"], body["signature"]
    if (
        not isinstance(key_id, str)
        or not isinstance(payload, dict)
        or not isinstance(sig_text, str)
    ):
        raise LicenseInvalid("The file is not a license or voucher (wrong field types).")
    try:
        signature = base64.b64decode(sig_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LicenseInvalid("The signature is not valid base64.") from exc
    if encode_signature(signature) != sig_text:
        raise LicenseInvalid("The signature was altered.")
    return key_id, payload, signature


def verify_signed(data: bytes, keys: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The payload of a file signed by one of ``keys`` (by key id); LicenseInvalid otherwise."""
    key_id, payload, signature = _open_envelope(data)
    key = keys.get(key_id)
    if key is None:
        raise LicenseInvalid(
            f"The file is signed with an unknown vendor key ({key_id[:16]!r}); it was not "
            "issued for this appliance."
        )
    try:
        key.verify(signature, canonical_json(payload))
    except InvalidSignature as exc:
        raise LicenseInvalid("The signature does not match: the file was altered.") from exc
    return payload


def parse_license(payload: dict[str, Any]) -> LicensePayload:
    if payload.get("kind") != "license":
        raise LicenseInvalid("This file is not a license (is it a voucher?).")
    return _validated(LicensePayload, payload)


def parse_voucher(payload: dict[str, Any]) -> VoucherPayload:
    if payload.get("kind") != "voucher":
        raise LicenseInvalid("This file is not a voucher (is it a license?).")
    return _validated(VoucherPayload, payload)


def _validated(model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise LicenseInvalid(f"The signed payload is malformed: {where}: {first['msg']}.") from exc


def as_bytes(data: str | bytes) -> bytes:
    """A file's content as bytes (an API body arrives as text)."""
    return data.encode("utf-8") if isinstance(data, str) else data
