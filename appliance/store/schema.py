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


class Blob(Base):
    """Index of the encrypted, content-addressed files under ``blobs/``."""

    __tablename__ = "blob"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    media_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
