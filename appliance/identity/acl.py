"""Per-resource access control: owner, and grants to users or groups at ``use`` or ``edit``.

Deny by default: a user may act on a resource only as its owner, as an admin, or through a
grant to them or to one of their groups. ``edit`` implies ``use``. Resources are named by kind
and id (``agent``, ``knowledge_base``), so the services that own agents and knowledge bases
call :meth:`AclService.check` without this module knowing their tables.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from appliance.errors import InvalidRequest, NotFound
from appliance.identity.acl_models import ResourceGrant, ResourceOwner
from appliance.identity.models import GroupMember, Role, User
from appliance.store.database import Database

RESOURCE_KINDS = frozenset({"agent", "knowledge_base"})


class Level(StrEnum):
    """What a grant allows; ``edit`` includes ``use``."""

    USE = "use"
    EDIT = "edit"


def _check_kind(kind: str) -> str:
    if kind not in RESOURCE_KINDS:
        raise InvalidRequest(f"Unknown resource kind {kind!r}.")
    return kind


class AclService:
    """Owners and grants of shareable resources."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, session: Session, kind: str, resource_id: str, owner_id: int) -> None:
        """Record the owner of a new resource, in the caller's write transaction."""
        session.add(
            ResourceOwner(kind=_check_kind(kind), resource_id=resource_id, owner_id=owner_id)
        )

    def grant(
        self,
        kind: str,
        resource_id: str,
        level: str,
        *,
        user_id: int | None = None,
        group_id: int | None = None,
    ) -> None:
        """Share with one user or one group (replaces an earlier grant to the same grantee)."""
        if (user_id is None) == (group_id is None):
            raise InvalidRequest("Grant to exactly one user or one group.")
        try:
            checked = Level(level)
        except ValueError as exc:
            raise InvalidRequest("A grant level is `use` or `edit`.") from exc

        def change(session: Session) -> None:
            self._owner(session, kind, resource_id)
            session.execute(
                delete(ResourceGrant).where(*_grant_key(kind, resource_id, user_id, group_id))
            )
            session.add(
                ResourceGrant(
                    kind=kind,
                    resource_id=resource_id,
                    user_id=user_id,
                    group_id=group_id,
                    level=checked.value,
                )
            )

        self.db.run_write(change)

    def revoke(
        self,
        kind: str,
        resource_id: str,
        *,
        user_id: int | None = None,
        group_id: int | None = None,
    ) -> None:
        """Remove a grant (no error when there was none)."""
        self.db.run_write(
            lambda s: s.execute(
                delete(ResourceGrant).where(*_grant_key(kind, resource_id, user_id, group_id))
            )
        )

    def level_for(self, user: User, kind: str, resource_id: str) -> Level | None:
        """The strongest level ``user`` holds on the resource, or None (no access)."""
        _check_kind(kind)
        if user.disabled:
            return None
        with self.db.read() as session:
            owner = session.scalar(
                select(ResourceOwner.owner_id).where(
                    ResourceOwner.kind == kind, ResourceOwner.resource_id == resource_id
                )
            )
            if owner is None:
                return None
            if owner == user.id or user.role == Role.ADMIN:
                return Level.EDIT
            groups = select(GroupMember.group_id).where(GroupMember.user_id == user.id)
            levels = set(
                session.scalars(
                    select(ResourceGrant.level).where(
                        ResourceGrant.kind == kind,
                        ResourceGrant.resource_id == resource_id,
                        or_(ResourceGrant.user_id == user.id, ResourceGrant.group_id.in_(groups)),
                    )
                )
            )
        if Level.EDIT.value in levels:
            return Level.EDIT
        return Level.USE if Level.USE.value in levels else None

    def check(self, user: User, kind: str, resource_id: str, level: str) -> None:
        """Raise NotFound unless ``user`` holds ``level`` (a resource one may not use is, to
        them, not there: the answer does not reveal that it exists)."""
        held = self.level_for(user, kind, resource_id)
        if held is None or (level == Level.EDIT and held is not Level.EDIT):
            raise NotFound()

    def forget(self, session: Session, kind: str, resource_id: str) -> None:
        """Drop owner and grants of a deleted resource, in the caller's transaction."""
        session.execute(
            delete(ResourceGrant).where(
                ResourceGrant.kind == kind, ResourceGrant.resource_id == resource_id
            )
        )
        session.execute(
            delete(ResourceOwner).where(
                ResourceOwner.kind == kind, ResourceOwner.resource_id == resource_id
            )
        )

    def _owner(self, session: Session, kind: str, resource_id: str) -> int:
        owner = session.scalar(
            select(ResourceOwner.owner_id).where(
                ResourceOwner.kind == _check_kind(kind), ResourceOwner.resource_id == resource_id
            )
        )
        if owner is None:
            raise NotFound()
        return int(owner)


def _grant_key(
    kind: str, resource_id: str, user_id: int | None, group_id: int | None
) -> list[ColumnElement[bool]]:
    return [
        ResourceGrant.kind == kind,
        ResourceGrant.resource_id == resource_id,
        ResourceGrant.user_id.is_(None) if user_id is None else ResourceGrant.user_id == user_id,
        ResourceGrant.group_id.is_(None)
        if group_id is None
        else ResourceGrant.group_id == group_id,
    ]
