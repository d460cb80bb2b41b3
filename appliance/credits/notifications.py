"""In-app notifications: stored rows the UI shows and the API lists (webhooks may follow).

Audiences: ``admins`` (seen by the admin role only) and ``user:<id>`` (one user; a group
budget's notice is copied to each member). There is no "everyone" audience: deny by default.
Notices for ``admins`` are shared: one admin marking one read marks it for all admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from appliance.credits.models import Notification
from appliance.credits.tx import Tx, as_tx
from appliance.errors import NotFound
from appliance.store.database import Database
from appliance.store.schema import utcnow

ADMINS = "admins"


def user_audience(user_id: int) -> str:
    """The audience value of one user's own notices."""
    return f"user:{user_id}"


NOTIFY_SQL = (
    "INSERT INTO notification (created_at, kind, audience, message, dedupe_key) "
    "VALUES (:created_at, :kind, :audience, :message, :dedupe_key) "
    "ON CONFLICT (dedupe_key) DO NOTHING"
)


def notify(
    unit: Session | Tx,
    kind: str,
    message: str,
    *,
    audience: str = ADMINS,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Add a notice inside the caller's write transaction; False when ``dedupe_key`` was
    already used (the notice was given before)."""
    tx = as_tx(unit)
    params = {
        "created_at": tx.time(now or utcnow()),
        "kind": kind,
        "audience": audience,
        "message": message,
        "dedupe_key": dedupe_key,
    }
    return tx.run(NOTIFY_SQL, params) > 0


def as_dict(row: Notification) -> dict[str, Any]:
    """One notice as plain data."""
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "kind": row.kind,
        "audience": row.audience,
        "message": row.message,
        "read": row.read_at is not None,
    }


class NotificationService:
    """List and mark notices for one caller."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _visible(self, user_id: int, is_admin: bool) -> Any:
        audiences = [user_audience(user_id)] + ([ADMINS] if is_admin else [])
        return or_(*(Notification.audience == a for a in audiences))

    def list_for(
        self, user_id: int, is_admin: bool, unread_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The caller's notices (and the admins' ones for an admin), newest first."""
        stmt = select(Notification).where(self._visible(user_id, is_admin))
        if unread_only:
            stmt = stmt.where(Notification.read_at.is_(None))
        with self.db.read() as session:
            rows = session.scalars(stmt.order_by(Notification.id.desc()).limit(limit))
            return [as_dict(row) for row in rows]

    def mark_read(self, notification_id: int, user_id: int, is_admin: bool) -> None:
        """Mark one visible notice read; NotFound for a notice the caller cannot see."""
        with self.db.write() as session:
            result = session.execute(
                update(Notification)
                .where(Notification.id == notification_id, self._visible(user_id, is_admin))
                .values(read_at=utcnow())
            )
            changed = int(getattr(result, "rowcount", 0) or 0)
            if not changed:
                raise NotFound("There is no such notification.")
