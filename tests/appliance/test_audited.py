"""An action and its audit entry commit together or not at all (one unit of work)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from appliance import Appliance, Role
from appliance.audit import AuditEntry
from appliance.audit.log import AuditLog
from appliance.errors import StorageError, WeakPassword
from appliance.identity.models import User


def _count(appliance: Appliance, model: type) -> int:
    with appliance.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_action_and_entry_commit_together(appliance: Appliance) -> None:
    services = appliance.services
    before = _count(appliance, AuditEntry)
    user = services.audited(
        lambda: services.users.create_user("together", "unit of work password 1", Role.MEMBER),
        action="user.create",
        actor="test",
        target=lambda u: f"user:{u.id}",
    )
    assert _count(appliance, AuditEntry) == before + 1
    assert services.audit.query(action="user.create")[-1]["target"] == f"user:{user.id}"
    assert services.audit.verify().ok


def test_failed_audit_append_rolls_the_action_back(
    appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = appliance.services
    users_before, entries_before = _count(appliance, User), _count(appliance, AuditEntry)

    def broken_append(self: AuditLog, session: object, **entry: object) -> int:
        raise StorageError("simulated audit write failure")

    monkeypatch.setattr(AuditLog, "append", broken_append)
    with pytest.raises(StorageError):
        services.audited(
            lambda: services.users.create_user("orphan", "unit of work password 1", Role.MEMBER),
            action="user.create",
            actor="test",
        )
    assert _count(appliance, User) == users_before
    assert _count(appliance, AuditEntry) == entries_before


def test_failed_action_leaves_no_entry(appliance: Appliance) -> None:
    services = appliance.services
    entries_before = _count(appliance, AuditEntry)
    with pytest.raises(WeakPassword):
        services.audited(
            lambda: services.users.create_user("weakling", "short", Role.MEMBER),
            action="user.create",
            actor="test",
        )
    assert _count(appliance, AuditEntry) == entries_before
