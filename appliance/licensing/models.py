"""Licensing tables: every imported license (the newest active one applies) and the clock's
high-water mark."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.identity.models import UtcDateTime
from appliance.store.schema import Base, utcnow


class LicenseRecord(Base):
    """One imported license file, kept verbatim so it is re-verified at every unseal and daily.
    Importing a new license deactivates the previous one (a downgrade deletes nothing)."""

    __tablename__ = "license_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class LicenseClock(Base):
    """One row: the latest time the appliance has seen (a clock set back below it is a
    rollback, reported and ignored for license dates) and when the license was last checked."""

    __tablename__ = "license_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    high_water: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rollback_detected_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rollback_clock: Mapped[datetime | None] = mapped_column(UtcDateTime())
