"""Sharing a knowledge base: grants to users or groups at ``use`` or ``edit``, and revoking
them. Both need ``edit`` on the base and are audited with the grant in one transaction; a
revoked user's next search of the base is a 404, like any base they may not use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from appliance.errors import InvalidRequest, NotFound
from appliance.identity.acl import Level
from appliance.identity.models import Group, User
from appliance.knowledge.service import KIND, KnowledgeService


def _one_grantee(user_id: int | None, group_id: int | None) -> None:
    if (user_id is None) == (group_id is None):
        raise InvalidRequest("Name exactly one user_id or one group_id.", field="user_id")


def _grantee_exists(session: Session, user_id: int | None, group_id: int | None) -> None:
    if user_id is not None and session.get(User, user_id) is None:
        raise NotFound("There is no such user.")
    if group_id is not None and session.get(Group, group_id) is None:
        raise NotFound("There is no such group.")


@contextmanager
def _audited(
    service: KnowledgeService,
    user: User,
    kb_id: str,
    user_id: int | None,
    group_id: int | None,
    verb: str,
    **details: object,
) -> Iterator[Session]:
    """Check ``edit`` on the base and one grantee, then run the change and its audit entry in
    one write transaction."""
    service.get_base(user, kb_id, Level.EDIT)
    _one_grantee(user_id, group_id)
    with service.db.write() as session:
        yield session
        service.audit.append(
            session,
            action=f"knowledge_base.{verb}",
            actor=f"user:{user.id}",
            target=f"knowledge_base:{kb_id}",
            details={**details, "user_id": user_id, "group_id": group_id},
        )


def share_base(
    service: KnowledgeService,
    user: User,
    kb_id: str,
    level: str,
    *,
    user_id: int | None = None,
    group_id: int | None = None,
) -> None:
    """Grant ``level`` on the base to one user or group (replacing an earlier grant)."""
    with _audited(service, user, kb_id, user_id, group_id, "share", level=level) as session:
        _grantee_exists(session, user_id, group_id)
        service.acl.grant(KIND, kb_id, level, user_id=user_id, group_id=group_id)


def unshare_base(
    service: KnowledgeService,
    user: User,
    kb_id: str,
    *,
    user_id: int | None = None,
    group_id: int | None = None,
) -> None:
    """Revoke the grant to one user or group (nothing to revoke is not an error)."""
    with _audited(service, user, kb_id, user_id, group_id, "unshare"):
        service.acl.revoke(KIND, kb_id, user_id=user_id, group_id=group_id)
