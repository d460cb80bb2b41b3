"""Who may do what to an agent: the ACL level plus the role rule, and bulk levels for lists.

Policy (docs/agents.md): an agent a user cannot use is, to them, not there (404); a user who
may use an agent but not edit it gets 403 on edits. Editing also needs a building role
(admin or builder): a member never edits, even with an ``edit`` grant.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from appliance.errors import Forbidden, NotFound
from appliance.identity.acl import AclService, Level
from appliance.identity.acl_models import ResourceGrant, ResourceOwner
from appliance.identity.models import GroupMember, Role, User

KIND = "agent"
BUILDING_ROLES = frozenset({Role.ADMIN.value, Role.BUILDER.value})


def require_builder(user: User) -> None:
    """Only admins and builders create agents."""
    if user.role not in BUILDING_ROLES or user.disabled:
        raise Forbidden("Only administrators and builders create agents.")


def require(acl: AclService, user: User, agent_id: str, level: Level) -> Level:
    """The level ``user`` holds on the agent, if it covers ``level``: NotFound when the agent
    is invisible to them, Forbidden when they may use but not edit it."""
    held = acl.level_for(user, KIND, agent_id)
    if held is None:
        raise NotFound("There is no such agent.")
    if level is Level.EDIT and (held is not Level.EDIT or user.role not in BUILDING_ROLES):
        raise Forbidden("You may use this agent but not change it.")
    return held


def visible_levels(session: Session, user: User) -> dict[str, Level] | None:
    """Every agent id ``user`` may use, with their level; None means all of them at ``edit``
    (admins)."""
    if user.disabled:
        return {}
    if user.role == Role.ADMIN:
        return None
    levels: dict[str, Level] = {
        rid: Level.EDIT
        for rid in session.scalars(
            select(ResourceOwner.resource_id).where(
                ResourceOwner.kind == KIND, ResourceOwner.owner_id == user.id
            )
        )
    }
    groups = select(GroupMember.group_id).where(GroupMember.user_id == user.id)
    rows = session.execute(
        select(ResourceGrant.resource_id, ResourceGrant.level).where(
            ResourceGrant.kind == KIND,
            or_(ResourceGrant.user_id == user.id, ResourceGrant.group_id.in_(groups)),
        )
    )
    for rid, level in rows:
        if levels.get(rid) is not Level.EDIT:
            levels[rid] = Level(level)
    return levels


def grants_of(session: Session, agent_id: str) -> list[dict[str, object]]:
    """The agent's grants: ``[{"user_id", "group_id", "level"}]``."""
    rows = session.scalars(
        select(ResourceGrant)
        .where(ResourceGrant.kind == KIND, ResourceGrant.resource_id == agent_id)
        .order_by(ResourceGrant.id)
    )
    return [{"user_id": g.user_id, "group_id": g.group_id, "level": g.level} for g in rows]
