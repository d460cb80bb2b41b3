"""Ids of users and groups are never given out twice.

SQLite numbers a new row max(id) + 1, so the newest user's id would pass to the next account
created after it is deleted — and with it everything that names the id without a foreign key
(the credit ledger's charges, budgets, analytics). Deleting a user or group records its id in
``id_high_water``; creating one numbers it above both the table and that mark. Both run inside
the write transaction that creates or deletes the row (the writer is serialised).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.identity.models import Group, IdHighWater, User

TABLES: dict[str, type[User] | type[Group]] = {"user": User, "group": Group}


def next_id(session: Session, name: str) -> int:
    """The id for a new row of table ``name`` (``user`` or ``group``)."""
    model = TABLES[name]
    highest = session.scalar(select(func.max(model.id))) or 0
    mark = session.get(IdHighWater, name)
    return max(highest, mark.value if mark is not None else 0) + 1


def retire_id(session: Session, name: str, row_id: int) -> None:
    """Record that ``row_id`` of table ``name`` is being deleted (never to be reused)."""
    mark = session.get(IdHighWater, name)
    if mark is None:
        session.add(IdHighWater(name=name, value=row_id))
    elif row_id > mark.value:
        mark.value = row_id
