"""Owners and grants of shareable resources (agents, knowledge bases)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.store.schema import Base


class ResourceOwner(Base):
    """Who owns a resource; every shareable resource has exactly one row."""

    __tablename__ = "resource_owner"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True
    )


class ResourceGrant(Base):
    """A resource shared with one user or one group at ``use`` or ``edit``."""

    __tablename__ = "resource_grant"
    __table_args__ = (
        UniqueConstraint("kind", "resource_id", "user_id", "group_id", name="uq_resource_grant"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("group.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(8), nullable=False)
