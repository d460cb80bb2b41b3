"""The agents and conversations REST API over a real appliance (ASGI, real SQLCipher)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance import Appliance, Role
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.web import create_app
from models import load_catalog
from tests.conftest import PASSPHRASE, make_settings

PW = "agents api password 12345"
DEFINITION = {
    "schema_version": 2,
    "name": "Calculator helper",
    "instructions": "Use the calculator for arithmetic.",
    "model": {"provider": "local", "model": load_catalog().default},
    "tools": [{"name": "calculator"}],
}


@dataclass
class Site:
    appliance: Appliance
    client: httpx.AsyncClient
    users: dict[str, User]

    def as_(self, name: str) -> dict[str, str]:
        token = self.appliance.services.tokens.login(self.users[name]).access_token
        return {"Authorization": f"Bearer {token}"}


async def open_site(home: Path) -> tuple[Site, httpx.AsyncClient]:
    appliance = Appliance(make_settings(home, rate_limit_api_per_minute=100000))
    appliance.initialise(PASSPHRASE)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    people = {
        name: users.create_user(name, PW, role)
        for name, role in [
            ("builder", Role.BUILDER),
            ("builder2", Role.BUILDER),
            ("member", Role.MEMBER),
            ("admin", Role.ADMIN),
            ("auditor", Role.AUDITOR),
        ]
    }
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
    return Site(appliance, client, people), client


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    made, client = await open_site(tmp_path / "home-a")
    async with client:
        yield made
    made.appliance.seal()


@pytest.fixture
async def fresh_site(tmp_path: Path) -> AsyncIterator[Site]:
    made, client = await open_site(tmp_path / "home-b")
    async with client:
        yield made
    made.appliance.seal()


async def create(site: Site, body: dict[str, Any], who: str = "builder") -> dict[str, Any]:
    response = await site.client.post("/api/v1/agents", json=body, headers=site.as_(who))
    assert response.status_code == 201, response.text
    return response.json()


async def test_version_history_over_http(site: Site, fresh_site: Site) -> None:
    client, me = site.client, site.as_("builder")
    agent = await create(site, DEFINITION)
    assert agent["version"] == 1
    url = f"/api/v1/agents/{agent['id']}"
    for n in range(2, 5):
        changed = {**DEFINITION, "instructions": f"Edit number {n}."}
        response = await client.put(
            url, json={"definition": changed, "change_note": f"edit {n}"}, headers=me
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == n
    versions = (await client.get(f"{url}/versions", headers=me)).json()
    assert [(v["version"], v["change_note"]) for v in versions] == [
        (1, "Created."),
        (2, "edit 2"),
        (3, "edit 3"),
        (4, "edit 4"),
    ]
    assert "definition" not in versions[0]
    third = (await client.get(f"{url}/versions/3", headers=me)).json()
    assert third["definition"]["instructions"] == "Edit number 3."
    diff = (await client.get(f"{url}/diff?from=1&to=3", headers=me)).json()
    assert diff["changes"] == [
        {
            "field": "instructions",
            "old": "Use the calculator for arithmetic.",
            "new": "Edit number 3.",
        }
    ]
    rolled = await client.post(f"{url}/rollback", json={"version": 1}, headers=me)
    assert rolled.status_code == 200
    assert rolled.json()["version"] == 5
    assert rolled.json()["definition"]["instructions"] == DEFINITION["instructions"]
    assert (await client.get(f"{url}/versions/9", headers=me)).status_code == 404

    exported = await client.get(f"{url}/export", headers=me)
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    imported = await fresh_site.client.post(
        "/api/v1/agents/import", json=exported.json(), headers=fresh_site.as_("builder2")
    )
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert body["version"] == 1
    assert body["owner_id"] == fresh_site.users["builder2"].id
    assert body["definition"] == rolled.json()["definition"]


async def test_invalid_definitions_answer_422_naming_the_field(site: Site) -> None:
    me = site.as_("builder")
    bad = {**DEFINITION, "limits": {"max_steps": 999}}
    response = await site.client.post("/api/v1/agents", json=bad, headers=me)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "agent_definition_invalid"
    assert problem["context"]["field"] == "limits.max_steps"
    agent = await create(site, DEFINITION)
    put = await site.client.put(
        f"/api/v1/agents/{agent['id']}",
        json={"definition": {**DEFINITION, "name": ""}, "change_note": "x"},
        headers=me,
    )
    assert put.status_code == 422
    assert put.json()["context"]["field"] == "name"
    assert (await site.client.get("/api/v1/agents", headers=me)).json()[0]["version"] == 1
    wrong = await site.client.post("/api/v1/agents/import", json=DEFINITION, headers=me)
    assert wrong.status_code == 422
    assert wrong.json()["context"]["field"] == "format"


async def test_templates(site: Site) -> None:
    me = site.as_("builder")
    listed = (await site.client.get("/api/v1/agent-templates", headers=me)).json()
    assert {t["id"] for t in listed} == {
        "document-qa",
        "data-analyst",
        "summariser",
        "translator",
        "it-helpdesk",
    }
    made = await create(site, {"template": "summariser", "name": "Minutes"})
    assert made["name"] == "Minutes"
    assert made["definition"]["model"]["model"] == load_catalog().default
    missing = await site.client.post(
        "/api/v1/agents", json={"template": "nope", "name": "x"}, headers=me
    )
    assert missing.status_code == 404
    wrapped = await create(site, {"definition": DEFINITION, "change_note": "from a script"})
    versions = await site.client.get(f"/api/v1/agents/{wrapped['id']}/versions", headers=me)
    assert versions.json()[0]["change_note"] == "from a script"


async def test_another_users_agent(site: Site) -> None:
    client = site.client
    agent = await create(site, DEFINITION)
    url = f"/api/v1/agents/{agent['id']}"
    change = {"definition": DEFINITION, "change_note": "hijack"}
    # Not shared: invisible (404) to members and other builders, listed for nobody else.
    for who in ("member", "builder2"):
        assert (await client.get(url, headers=site.as_(who))).status_code == 404
        assert (await client.get(f"{url}/export", headers=site.as_(who))).status_code == 404
        assert (await client.get("/api/v1/agents", headers=site.as_(who))).json() == []
    assert (await client.put(url, json=change, headers=site.as_("builder2"))).status_code == 404
    assert (await client.delete(url, headers=site.as_("builder2"))).status_code == 404
    # Shared for use: readable, and changes answer 403.
    for who in ("member", "builder2"):
        user_id = site.users[who].id
        shared = await client.post(
            f"{url}/shares", json={"level": "use", "user_id": user_id}, headers=site.as_("builder")
        )
        assert shared.status_code == 200
    got = await client.get(url, headers=site.as_("member"))
    assert got.status_code == 200
    assert got.json()["level"] == "use"
    assert "shares" not in got.json()
    put = await client.put(url, json=change, headers=site.as_("builder2"))
    assert put.status_code == 403
    assert put.json()["code"] == "forbidden"
    rollback = await client.post(
        f"{url}/rollback", json={"version": 1}, headers=site.as_("builder2")
    )
    assert rollback.status_code == 403
    # Upgraded to edit: the builder may change it; the owner sees the grants.
    await client.post(
        f"{url}/shares",
        json={"level": "edit", "user_id": site.users["builder2"].id},
        headers=site.as_("builder"),
    )
    assert (await client.put(url, json=change, headers=site.as_("builder2"))).status_code == 200
    shares = (await client.get(url, headers=site.as_("builder"))).json()["shares"]
    assert {(s["user_id"], s["level"]) for s in shares} == {
        (site.users["member"].id, "use"),
        (site.users["builder2"].id, "edit"),
    }
    removed = await client.delete(
        f"{url}/shares?user_id={site.users['member'].id}", headers=site.as_("builder")
    )
    assert removed.status_code == 200
    assert (await client.get(url, headers=site.as_("member"))).status_code == 404
    # Admins see everything.
    assert (await client.get(url, headers=site.as_("admin"))).json()["level"] == "edit"


async def test_archive_and_delete(site: Site) -> None:
    client, me = site.client, site.as_("builder")
    agent = await create(site, DEFINITION)
    url = f"/api/v1/agents/{agent['id']}"
    assert (await client.delete(f"{url}?archive=true", headers=me)).status_code == 204
    assert (await client.get("/api/v1/agents", headers=me)).json() == []
    archived = (await client.get("/api/v1/agents?archived=true", headers=me)).json()
    assert [a["archived"] for a in archived] == [True]
    put = await client.put(url, json={"definition": DEFINITION}, headers=me)
    assert put.status_code == 409
    assert put.json()["code"] == "agent_archived"
    assert (await client.delete(url, headers=me)).status_code == 204
    assert (await client.get(url, headers=me)).status_code == 404


async def test_scopes_of_api_keys(site: Site) -> None:
    services = site.appliance.services
    _, token = services.api_keys.create(site.users["builder"].id, "chat only", ["chat"])
    key = {"Authorization": f"Bearer {token}"}
    assert (await site.client.get("/api/v1/agents", headers=key)).status_code == 403
    assert (await site.client.get("/api/v1/conversations", headers=key)).status_code == 200


async def test_conversations_over_http(site: Site) -> None:
    services = site.appliance.services
    agent = await create(site, DEFINITION)
    member = site.users["member"]
    services.agents.share(site.users["builder"], agent["id"], "use", user_id=member.id)
    conv = services.conversations.create(member, agent["id"], 1)
    turn = [
        {"role": "user", "content": "What is 1234*5678?"},
        {"role": "assistant", "content": "It is 7006652."},
    ]
    stored = services.conversations.append(member, conv["id"], turn, run_id="r1")
    client, me = site.client, site.as_("member")
    url = f"/api/v1/conversations/{conv['id']}"

    listed = (await client.get("/api/v1/conversations", headers=me)).json()
    assert [c["id"] for c in listed] == [conv["id"]]
    assert (await client.get("/api/v1/conversations?q=7006652", headers=me)).json() == listed
    assert (await client.get("/api/v1/conversations?q=nothing", headers=me)).json() == []
    got = (await client.get(url, headers=me)).json()
    assert [m["content"] for m in got["messages"]] == [m["content"] for m in turn]
    renamed = await client.patch(url, json={"title": "Arithmetic"}, headers=me)
    assert renamed.json()["title"] == "Arithmetic"
    answer = stored[1]["id"]
    thumbs = await client.post(
        f"{url}/messages/{answer}/feedback", json={"thumbs": -1, "comment": "slow"}, headers=me
    )
    assert thumbs.status_code == 200
    bad = await client.post(f"{url}/messages/{answer}/feedback", json={"thumbs": 5}, headers=me)
    assert bad.status_code == 422
    got = (await client.get(url, headers=me)).json()
    assert got["messages"][1]["feedback"] == {"thumbs": -1, "comment": "slow"}

    # Another user's conversation: 404 for everyone, the admin included; auditors: 403.
    for who in ("builder", "admin"):
        assert (await client.get(url, headers=site.as_(who))).status_code == 404
        patch = await client.patch(url, json={"title": "x"}, headers=site.as_(who))
        assert patch.status_code == 404
        assert (await client.delete(url, headers=site.as_(who))).status_code == 404
        feedback = await client.post(
            f"{url}/messages/{answer}/feedback", json={"thumbs": 1}, headers=site.as_(who)
        )
        assert feedback.status_code == 404
    assert (await client.get(url, headers=site.as_("auditor"))).status_code == 403
    assert (await client.get(url, headers=me)).json()["title"] == "Arithmetic"

    assert (await client.delete(url, headers=me)).status_code == 204
    assert (await client.get(url, headers=me)).status_code == 404
