"""Groups of users. Memberships are removed with the group or the user (ON DELETE CASCADE)."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.identity.ids import next_id, retire_id
from appliance.identity.models import Group, GroupMember, User
from appliance.store.database import Database
from appliance.store.schema import utcnow

GROUP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")


def check_group_name(name: str) -> str:
    """``name`` stripped if valid (1–64 of letters, digits, space and ``. _ - @``)."""
    cleaned = name.strip() if isinstance(name, str) else ""
    if not GROUP_NAME_RE.fullmatch(cleaned):
        raise InvalidRequest(
            "A group name is 1–64 characters of letters, digits, spaces and . _ - @.",
            field="name",
        )
    return cleaned


class GroupService:
    """Groups and their members in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Run inside the write transaction that deletes a group, with its id (credits drop
        # the group's budgets here).
        self.deletion_hooks: list[Callable[[Session, int], None]] = []

    def create_group(self, name: str) -> Group:
        """A new, empty group; Conflict when the name is taken."""
        group = Group(name=check_group_name(name), created_at=utcnow())
        try:
            with self.db.write() as session:
                if session.scalar(select(Group).where(Group.name == group.name)) is not None:
                    raise Conflict("A group with this name already exists.", field="name")
                group.id = next_id(session, "group")
                session.add(group)
        except IntegrityError as exc:
            raise Conflict("A group with this name already exists.", field="name") from exc
        return group

    def get_group(self, group_id: int) -> Group:
        """The group with this id; NotFound otherwise."""
        with self.db.read() as session:
            group = session.get(Group, group_id)
        if group is None:
            raise NotFound("There is no such group.")
        return group

    def list_groups(self) -> list[Group]:
        """Every group, by name."""
        with self.db.read() as session:
            return list(session.scalars(select(Group).order_by(Group.name)))

    def delete_group(self, group_id: int) -> None:
        """Delete a group (its memberships go with it; the users stay)."""

        def change(session: Session) -> None:
            group = _group(session, group_id)
            for hook in self.deletion_hooks:
                hook(session, group_id)
            retire_id(session, "group", group_id)
            session.delete(group)

        self.db.run_write(change)

    def add_member(self, group_id: int, user_id: int) -> None:
        """Put a user in a group (already a member: nothing changes)."""

        def change(session: Session) -> None:
            _group(session, group_id)
            if session.get(User, user_id) is None:
                raise NotFound("There is no such user.")
            if session.get(GroupMember, (group_id, user_id)) is None:
                session.add(GroupMember(group_id=group_id, user_id=user_id))

        self.db.run_write(change)

    def remove_member(self, group_id: int, user_id: int) -> None:
        """Take a user out of a group (not a member: nothing changes)."""

        def change(session: Session) -> None:
            _group(session, group_id)
            session.execute(
                delete(GroupMember).where(
                    GroupMember.group_id == group_id, GroupMember.user_id == user_id
                )
            )

        self.db.run_write(change)

    def list_members(self, group_id: int) -> list[User]:
        """The group's users, by username."""
        with self.db.read() as session:
            _group(session, group_id)
            return list(
                session.scalars(
                    select(User)
                    .join(GroupMember, GroupMember.user_id == User.id)
                    .where(GroupMember.group_id == group_id)
                    .order_by(User.username_norm)
                )
            )

    def groups_of(self, user_id: int) -> list[Group]:
        """The groups a user belongs to, by name."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(Group)
                    .join(GroupMember, GroupMember.group_id == Group.id)
                    .where(GroupMember.user_id == user_id)
                    .order_by(Group.name)
                )
            )


def _group(session: Session, group_id: int) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound("There is no such group.")
    return group
