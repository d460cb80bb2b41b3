"""Identity tables: users, groups, group membership and API keys.

Usernames are unique case-insensitively: ``username`` keeps the spelling the admin chose and
``username_norm`` (lower-cased) carries the unique constraint. Times are UTC; SQLite hands them
back naive, so the columns use :class:`UtcDateTime`, which hands back aware UTC everywhere.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, Dialect, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from appliance.store.schema import Base, utcnow


class Role(StrEnum):
    """What a user may do; checked by the API layer."""

    ADMIN = "admin"
    BUILDER = "builder"
    MEMBER = "member"
    AUDITOR = "auditor"


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite returns stored times without a zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always loads an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return as_utc(value)


class User(Base):
    """A person (or service account) who signs in with a password."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    username_norm: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), nullable=False, default=utcnow
    )
    # Consecutive failed sign-ins; from the 5th the account is locked for a growing time.
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Group(Base):
    """A named set of users (for sharing agents and knowledge)."""

    __tablename__ = "group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class GroupMember(Base):
    """Membership of one user in one group; goes with either of them."""

    __tablename__ = "group_member"

    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("group.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ApiKey(Base):
    """A bearer token for scripts: ``enc_<id>_<secret>``; only an HMAC of the secret is kept."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @property
    def scope_list(self) -> list[str]:
        """The scopes as a list (stored as a JSON array)."""
        value = json.loads(self.scopes)
        return [str(s) for s in value]


class IdHighWater(Base):
    """Per table (``user``, ``group``), the highest id ever deleted: new rows are numbered
    above it, so an id names one account or group for the life of the home."""

    __tablename__ = "id_high_water"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False)
