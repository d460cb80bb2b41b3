"""Per-resource ACL: owner, user and group grants, use/edit, deny by default."""

from __future__ import annotations

import pytest

from appliance import Appliance, Role
from appliance.errors import InvalidRequest, NotFound
from appliance.identity.acl import Level
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService

PW = "acl test password 12345"


@pytest.fixture
def people(appliance: Appliance) -> dict[str, User]:
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    return {
        name: users.create_user(name, PW, role)
        for name, role in [
            ("owner", Role.BUILDER),
            ("friend", Role.MEMBER),
            ("teammate", Role.MEMBER),
            ("stranger", Role.MEMBER),
            ("boss", Role.ADMIN),
            ("reader", Role.AUDITOR),
        ]
    }


@pytest.fixture
def agent(appliance: Appliance, people: dict[str, User]) -> str:
    acl = appliance.services.acl
    appliance.db.run_write(lambda s: acl.register(s, "agent", "agent-1", people["owner"].id))
    return "agent-1"


def test_deny_by_default(appliance: Appliance, people: dict[str, User], agent: str) -> None:
    acl = appliance.services.acl
    assert acl.level_for(people["owner"], "agent", agent) is Level.EDIT
    assert acl.level_for(people["boss"], "agent", agent) is Level.EDIT
    for name in ("friend", "teammate", "stranger", "reader"):
        assert acl.level_for(people[name], "agent", agent) is None
        with pytest.raises(NotFound):
            acl.check(people[name], "agent", agent, "use")
    assert acl.level_for(people["owner"], "agent", "no-such-agent") is None


def test_user_and_group_grants(appliance: Appliance, people: dict[str, User], agent: str) -> None:
    services = appliance.services
    acl = services.acl
    acl.grant("agent", agent, "use", user_id=people["friend"].id)
    team = services.groups.create_group("team")
    services.groups.add_member(team.id, people["teammate"].id)
    acl.grant("agent", agent, "edit", group_id=team.id)
    acl.check(people["friend"], "agent", agent, "use")
    with pytest.raises(NotFound):
        acl.check(people["friend"], "agent", agent, "edit")
    acl.check(people["teammate"], "agent", agent, "edit")
    assert acl.level_for(people["stranger"], "agent", agent) is None
    # Upgrading replaces the grant; leaving the group removes what it gave.
    acl.grant("agent", agent, "edit", user_id=people["friend"].id)
    assert acl.level_for(people["friend"], "agent", agent) is Level.EDIT
    services.groups.remove_member(team.id, people["teammate"].id)
    assert acl.level_for(people["teammate"], "agent", agent) is None
    acl.revoke("agent", agent, user_id=people["friend"].id)
    assert acl.level_for(people["friend"], "agent", agent) is None


def test_disabled_users_have_no_access(
    appliance: Appliance, people: dict[str, User], agent: str
) -> None:
    appliance.services.users.set_disabled(people["owner"].id, True)
    owner = appliance.services.users.get_user(people["owner"].id)
    assert appliance.services.acl.level_for(owner, "agent", agent) is None


@pytest.mark.parametrize(
    ("kwargs", "level"),
    [({}, "use"), ({"user_id": 1, "group_id": 1}, "use"), ({"user_id": 1}, "admin")],
)
def test_bad_grants_are_refused(appliance: Appliance, agent: str, kwargs: dict, level: str) -> None:
    with pytest.raises(InvalidRequest):
        appliance.services.acl.grant("agent", agent, level, **kwargs)


def test_unknown_kind_and_resource(appliance: Appliance, people: dict[str, User]) -> None:
    acl = appliance.services.acl
    with pytest.raises(InvalidRequest):
        acl.level_for(people["owner"], "spaceship", "x")
    with pytest.raises(NotFound):
        acl.grant("agent", "missing", "use", user_id=people["friend"].id)


def test_forget_removes_owner_and_grants(
    appliance: Appliance, people: dict[str, User], agent: str
) -> None:
    acl = appliance.services.acl
    acl.grant("agent", agent, "use", user_id=people["friend"].id)
    appliance.db.run_write(lambda s: acl.forget(s, "agent", agent))
    assert acl.level_for(people["owner"], "agent", agent) is None
    assert acl.level_for(people["friend"], "agent", agent) is None
