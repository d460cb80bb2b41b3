"""Table models (SQLAlchemy 2 declarative). Alembic migrations must match these exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware now, for default timestamps."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Installation(Base):
    """One row describing this appliance install (created by ``enclave init``)."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    installation_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # HMAC key for blob addresses; lives only inside the encrypted database and, unlike the
    # data key, survives a rekey (so blob ids stay stable).
    blob_address_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    # HMAC key of the audit log's hash chain; like blob_address_key it survives a rekey.
    # NULL only in homes created before migration 0002 (filled in at the next unseal).
    audit_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # HMAC key of API-key hashes; survives a rekey so API keys keep working. NULL until the
    # first API key is made (migration 0003 adds it; the service fills it in).
    api_key_hmac_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class Blob(Base):
    """Index of the encrypted, content-addressed files under ``blobs/``."""

    __tablename__ = "blob"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    media_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
