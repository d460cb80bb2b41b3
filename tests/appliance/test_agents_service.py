"""AgentService: versions, diff, rollback, export/import, ACL, archive/delete and audit, on a
real SQLCipher home."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from appliance import Appliance, Role
from appliance.agents.models import AgentVersion
from appliance.agents.templates import TEMPLATES, template_document
from appliance.errors import AgentArchived, AgentInvalid, Forbidden, NotFound
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from engine.agents import parse_definition
from models import load_catalog
from tests.conftest import PASSPHRASE, make_settings

PW = "agents test password 12345"


def definition(name: str = "Helper", **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 2,
        "name": name,
        "model": {"provider": "local", "model": load_catalog().default},
    }
    doc.update(changes)
    return doc


def make_people(appliance: Appliance) -> dict[str, User]:
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    return {
        name: users.create_user(name, PW, role)
        for name, role in [
            ("owner", Role.BUILDER),
            ("colleague", Role.BUILDER),
            ("friend", Role.MEMBER),
            ("stranger", Role.MEMBER),
            ("boss", Role.ADMIN),
            ("reader", Role.AUDITOR),
        ]
    }


@pytest.fixture
def people(appliance: Appliance) -> dict[str, User]:
    return make_people(appliance)


@pytest.fixture
def other_home(tmp_path: Path) -> Iterator[Appliance]:
    """A second, independent appliance (another install) for import."""
    other = Appliance(make_settings(tmp_path / "other-home"))
    other.initialise(PASSPHRASE)
    yield other
    other.seal()


def actions(appliance: Appliance) -> list[str]:
    return [e["action"] for e in appliance.services.audit.query(limit=1000)]


def test_version_history_round_trip(
    appliance: Appliance, people: dict[str, User], other_home: Appliance
) -> None:
    agents = appliance.services.agents
    owner = people["owner"]
    created = agents.create(owner, definition(), "first")
    assert (created.active_version, created.latest_version, created.level) == (1, 1, "edit")

    edits = [
        definition(instructions="Answer briefly."),
        definition(instructions="Answer briefly.", limits={"max_steps": 3}),
        definition(
            "Renamed",
            instructions="Answer briefly.",
            limits={"max_steps": 3},
            tools=[{"name": "calculator"}],
        ),
    ]
    for n, doc in enumerate(edits, start=2):
        info = agents.update(owner, created.id, doc, f"edit {n}")
        assert info.active_version == n
    history = agents.versions(owner, created.id)
    assert [(v.version, v.change_note, v.author_id) for v in history] == [
        (1, "first", owner.id),
        (2, "edit 2", owner.id),
        (3, "edit 3", owner.id),
        (4, "edit 4", owner.id),
    ]

    changes = {c["field"]: c for c in agents.diff(owner, created.id, 1, 4)["changes"]}
    assert set(changes) == {"instructions", "limits.max_steps", "name", "tools"}
    assert changes["name"]["old"] == "Helper"
    assert changes["name"]["new"] == "Renamed"
    assert agents.diff(owner, created.id, 3, 3)["changes"] == []

    rolled = agents.rollback(owner, created.id, 2)
    assert (rolled.active_version, rolled.name) == (5, "Helper")
    assert (
        agents.version(owner, created.id, 5).definition
        == agents.version(owner, created.id, 2).definition
    )
    assert [v.version for v in agents.versions(owner, created.id)] == [1, 2, 3, 4, 5]
    assert agents.version(owner, created.id, 4).definition["name"] == "Renamed"  # kept
    active, number = agents.active_definition(owner, created.id)
    assert (active.instructions, number) == ("Answer briefly.", 5)

    exported = agents.export(owner, created.id)
    assert exported["format"] == "enclave-agent"
    assert exported["format_version"] == 1
    assert exported["source"] == {"agent_id": created.id, "version": 5}
    wire = json.loads(json.dumps(exported))  # what a file on a USB stick holds

    importer = make_people(other_home)["colleague"]
    imported = other_home.services.agents.import_agent(importer, wire)
    assert imported.owner_id == importer.id
    assert imported.active_version == 1
    assert imported.definition == agents.get(owner, created.id).definition
    again, _ = other_home.services.agents.active_definition(importer, imported.id)
    assert again == active
    assert "agent.import" in actions(other_home)
    assert actions(appliance).count("agent.update") == 3
    assert {"agent.create", "agent.rollback"} <= set(actions(appliance))


def test_an_invalid_definition_saves_nothing(appliance: Appliance, people: dict[str, User]) -> None:
    agents = appliance.services.agents
    owner = people["owner"]
    before = actions(appliance)
    with pytest.raises(AgentInvalid) as caught:
        agents.create(owner, definition(limits={"max_steps": 0}))
    assert caught.value.context["field"] == "limits.max_steps"
    assert caught.value.http_status == 422
    assert agents.list_agents(owner) == []
    created = agents.create(owner, definition())
    with pytest.raises(AgentInvalid):
        agents.update(owner, created.id, definition(tools=[{"name": "no spaces"}]), "bad")
    with pytest.raises(NotFound):
        agents.rollback(owner, created.id, 7)
    assert [v.version for v in agents.versions(owner, created.id)] == [1]
    assert actions(appliance) == [*before, "agent.create"]


def test_sharing_and_levels(appliance: Appliance, people: dict[str, User]) -> None:
    services = appliance.services
    agents = services.agents
    owner, friend, colleague = people["owner"], people["friend"], people["colleague"]
    created = agents.create(owner, definition())

    for name in ("friend", "stranger", "colleague", "reader"):
        with pytest.raises(NotFound):
            agents.get(people[name], created.id)
        with pytest.raises(NotFound):
            agents.active_definition(people[name], created.id)
        with pytest.raises(NotFound):
            agents.update(people[name], created.id, definition(), "x")
        assert agents.list_agents(people[name]) == []
    with pytest.raises(NotFound):
        agents.export(people["stranger"], created.id)

    grants = agents.share(owner, created.id, "use", user_id=friend.id)
    assert grants == [{"user_id": friend.id, "group_id": None, "level": "use"}]
    assert agents.get(friend, created.id).level == "use"
    assert [a.id for a in agents.list_agents(friend)] == [created.id]
    assert agents.active_definition(friend, created.id)[1] == 1
    with pytest.raises(Forbidden):
        agents.update(friend, created.id, definition(), "no")
    with pytest.raises(Forbidden):
        agents.share(friend, created.id, "edit", user_id=friend.id)

    # A member never edits, even with an `edit` grant; a builder with one does.
    agents.share(owner, created.id, "edit", user_id=friend.id)
    with pytest.raises(Forbidden):
        agents.rollback(friend, created.id, 1)
    team = services.groups.create_group("team")
    services.groups.add_member(team.id, colleague.id)
    agents.share(owner, created.id, "edit", group_id=team.id)
    assert agents.update(colleague, created.id, definition("Team edit"), "ok").active_version == 2
    assert agents.versions(owner, created.id)[1].author_id == colleague.id
    assert agents.list_agents(colleague)[0].level == "edit"

    # Admins see and edit everything; grantees must exist.
    assert [a.level for a in agents.list_agents(people["boss"])] == ["edit"]
    with pytest.raises(NotFound):
        agents.share(owner, created.id, "use", user_id=999999)

    agents.unshare(owner, created.id, user_id=friend.id)
    with pytest.raises(NotFound):
        agents.get(friend, created.id)
    assert actions(appliance).count("agent.share") == 3
    assert "agent.unshare" in actions(appliance)


def test_only_builders_and_admins_create(appliance: Appliance, people: dict[str, User]) -> None:
    agents = appliance.services.agents
    for name in ("friend", "reader"):
        with pytest.raises(Forbidden):
            agents.create(people[name], definition())
        with pytest.raises(Forbidden):
            agents.import_agent(people[name], {"format": "enclave-agent"})
    assert agents.create(people["boss"], definition()).owner_id == people["boss"].id


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"definition": {}}, "format"),
        ({"format": "enclave-agent", "format_version": 9, "definition": {}}, "format_version"),
        ({"format": "enclave-agent", "format_version": 1, "definition": {"name": "x"}}, "model"),
        ("not an object", "format"),
    ],
)
def test_import_validates(
    appliance: Appliance, people: dict[str, User], document: Any, field: str
) -> None:
    with pytest.raises(AgentInvalid) as caught:
        appliance.services.agents.import_agent(people["owner"], document)
    assert caught.value.context["field"] == field
    assert appliance.services.agents.list_agents(people["owner"]) == []


def test_import_upgrades_an_old_schema(appliance: Appliance, people: dict[str, User]) -> None:
    v1 = {"schema_version": 1, "name": "Old", "model": "smollm2", "temperature": 0.1}
    doc = {"format": "enclave-agent", "format_version": 1, "definition": v1}
    info = appliance.services.agents.import_agent(people["owner"], doc)
    assert info.definition["schema_version"] == 2
    assert info.definition["generation"]["temperature"] == 0.1
    assert info.definition["model"] == {"provider": "local", "model": "smollm2"}


def test_archive_and_delete(appliance: Appliance, people: dict[str, User]) -> None:
    services = appliance.services
    agents = services.agents
    owner = people["owner"]
    kept = agents.create(owner, definition("Kept"))
    gone = agents.create(owner, definition("Gone"))
    agents.share(owner, gone.id, "use", user_id=people["friend"].id)
    conversation = services.conversations.create(owner, gone.id, 1, "about gone")

    agents.archive(owner, kept.id)
    assert [a.name for a in agents.list_agents(owner)] == ["Gone"]
    assert {a.name for a in agents.list_agents(owner, include_archived=True)} == {"Kept", "Gone"}
    with pytest.raises(AgentArchived):
        agents.active_definition(owner, kept.id)
    with pytest.raises(AgentArchived):
        agents.update(owner, kept.id, definition(), "x")
    agents.archive(owner, kept.id, archived=False)
    assert agents.active_definition(owner, kept.id)[1] == 1

    with pytest.raises(Forbidden):
        agents.delete(people["friend"], gone.id)
    agents.delete(owner, gone.id)
    with pytest.raises(NotFound):
        agents.get(owner, gone.id)
    with pytest.raises(NotFound):
        agents.get(people["boss"], gone.id)
    assert services.acl.level_for(people["friend"], "agent", gone.id) is None
    with appliance.db.read() as session:
        left = session.scalar(
            select(func.count()).select_from(AgentVersion).where(AgentVersion.agent_id == gone.id)
        )
    assert left == 0
    # The user's conversation is still theirs, without its agent.
    assert services.conversations.get(owner, conversation["id"])["agent_id"] is None
    assert {"agent.archive", "agent.restore", "agent.delete"} <= set(actions(appliance))


@pytest.mark.parametrize("template", [t.id for t in TEMPLATES])
def test_templates_are_valid_on_the_default_model(template: str) -> None:
    parsed = parse_definition(template_document(template, name="Mine"))
    assert parsed.model.model == load_catalog().default
    assert parsed.model.provider == "local"
    assert parsed.name == "Mine"


def test_unknown_template(appliance: Appliance) -> None:
    with pytest.raises(NotFound):
        template_document("no-such-template")


def test_concurrent_saves_get_distinct_consecutive_versions(
    appliance: Appliance, people: dict[str, User]
) -> None:
    agents = appliance.services.agents
    owner = people["owner"]
    created = agents.create(owner, definition())

    def save(n: int) -> int:
        return agents.update(owner, created.id, definition(f"Save {n}"), f"save {n}").latest_version

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(save, range(12)))
    history = agents.versions(owner, created.id)
    assert [v.version for v in history] == list(range(1, 14))
    assert sorted(v.change_note for v in history[1:]) == sorted(f"save {n}" for n in range(12))
    assert agents.get(owner, created.id).active_version == 13
