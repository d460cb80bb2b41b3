"""The ``audit_entry`` table: one row per recorded event, linked into an HMAC hash chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from appliance.store.schema import Base, utcnow


class AuditEntry(Base):
    """One audit event. ``id`` is its position in the chain (1, 2, 3, … with no gaps).

    ``entry_hash`` is HMAC-SHA256 over ``prev_hash`` and the canonical JSON of the other
    fields (see :mod:`appliance.audit.log`); ``prev_hash`` is the previous entry's
    ``entry_hash`` (64 zeros for the first entry).
    """

    __tablename__ = "audit_entry"
    # AUTOINCREMENT: SQLite never reuses the id of a deleted last row.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, index=True
    )
    actor: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)
