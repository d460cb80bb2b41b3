"""The authorization matrix: every API route × anonymous and each role, from the live app.

Deny by default: every route must have a rule here, so a new route without one fails this test.
A rule names who may call it; everyone else must get 401 (anonymous) or 403 (signed in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Route

from appliance import Appliance
from appliance.identity.models import Role
from appliance.web import create_app
from tests.conftest import PASSPHRASE, make_settings

PUBLIC = "public"
ANY = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
AUDIT = frozenset({Role.ADMIN, Role.AUDITOR})
BUILD = frozenset({Role.ADMIN, Role.BUILDER})
USERS = frozenset({Role.ADMIN, Role.BUILDER, Role.MEMBER})

RULES: dict[tuple[str, str], str | frozenset[Role]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/api/v1/status"): PUBLIC,
    ("POST", "/api/v1/init"): PUBLIC,
    ("POST", "/api/v1/unseal"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/api/docs-assets/swagger-init.js"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/first-admin"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): ANY,
    ("POST", "/api/v1/auth/session"): PUBLIC,
    ("DELETE", "/api/v1/auth/session"): ANY,
    ("GET", "/api/v1/auth/me"): ANY,
    ("POST", "/api/v1/auth/password"): ANY,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/users/{user_id}"): ADMIN,
    ("POST", "/api/v1/users/{user_id}/password"): ADMIN,
    ("POST", "/api/v1/users/{user_id}/sessions/revoke"): ADMIN,
    ("GET", "/api/v1/groups"): ADMIN,
    ("POST", "/api/v1/groups"): ADMIN,
    ("DELETE", "/api/v1/groups/{group_id}"): ADMIN,
    ("GET", "/api/v1/groups/{group_id}/members"): ADMIN,
    ("PUT", "/api/v1/groups/{group_id}/members/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/groups/{group_id}/members/{user_id}"): ADMIN,
    ("GET", "/api/v1/api-keys"): ANY,
    ("POST", "/api/v1/api-keys"): ANY,
    ("DELETE", "/api/v1/api-keys/{key_id}"): ANY,
    ("GET", "/api/v1/audit"): AUDIT,
    ("GET", "/api/v1/audit/export"): AUDIT,
    ("GET", "/api/v1/audit/verify"): AUDIT,
    ("GET", "/api/v1/license/status"): ANY,
    ("GET", "/api/v1/license"): ADMIN,
    ("POST", "/api/v1/license"): ADMIN,
    ("POST", "/api/v1/license/evaluation"): ADMIN,
    ("GET", "/api/v1/credits/balance"): ANY,
    ("GET", "/api/v1/credits/ledger"): AUDIT,
    ("GET", "/api/v1/credits/verify"): AUDIT,
    ("GET", "/api/v1/credits/usage"): AUDIT,
    ("GET", "/api/v1/credits/forecast"): AUDIT,
    ("GET", "/api/v1/credits/recommendations"): AUDIT,
    ("GET", "/api/v1/credits/statement"): AUDIT,
    ("GET", "/api/v1/credits/prices"): ANY,
    ("PUT", "/api/v1/credits/prices"): ADMIN,
    ("GET", "/api/v1/credits/budgets"): ADMIN,
    ("POST", "/api/v1/credits/budgets"): ADMIN,
    ("PATCH", "/api/v1/credits/budgets/{budget_id}"): ADMIN,
    ("DELETE", "/api/v1/credits/budgets/{budget_id}"): ADMIN,
    ("POST", "/api/v1/credits/vouchers"): ADMIN,
    ("GET", "/api/v1/notifications"): ANY,
    ("POST", "/api/v1/notifications/{notification_id}/read"): ANY,
    ("POST", "/api/v1/agents"): BUILD,
    ("GET", "/api/v1/agents"): USERS,
    ("POST", "/api/v1/agents/import"): BUILD,
    ("GET", "/api/v1/agents/{agent_id}"): USERS,
    ("PUT", "/api/v1/agents/{agent_id}"): BUILD,
    ("DELETE", "/api/v1/agents/{agent_id}"): BUILD,
    ("GET", "/api/v1/agents/{agent_id}/versions"): USERS,
    ("GET", "/api/v1/agents/{agent_id}/versions/{n}"): USERS,
    ("GET", "/api/v1/agents/{agent_id}/diff"): USERS,
    ("POST", "/api/v1/agents/{agent_id}/rollback"): BUILD,
    ("GET", "/api/v1/agents/{agent_id}/export"): USERS,
    ("POST", "/api/v1/agents/{agent_id}/shares"): BUILD,
    ("DELETE", "/api/v1/agents/{agent_id}/shares"): BUILD,
    ("PUT", "/api/v1/agents/{agent_id}/tool-network"): ADMIN,
    ("GET", "/api/v1/agent-templates"): BUILD,
    ("GET", "/api/v1/conversations"): USERS,
    ("GET", "/api/v1/conversations/{conversation_id}"): USERS,
    ("PATCH", "/api/v1/conversations/{conversation_id}"): USERS,
    ("DELETE", "/api/v1/conversations/{conversation_id}"): USERS,
    ("POST", "/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback"): USERS,
    ("GET", "/api/v1/providers"): ADMIN,
    ("POST", "/api/v1/providers"): ADMIN,
    ("GET", "/api/v1/providers/{provider_id}"): ADMIN,
    ("PATCH", "/api/v1/providers/{provider_id}"): ADMIN,
    ("DELETE", "/api/v1/providers/{provider_id}"): ADMIN,
    ("POST", "/api/v1/providers/{provider_id}/probe"): ADMIN,
    ("POST", "/api/v1/agents/{agent_id}/runs"): USERS,
    ("GET", "/api/v1/runs/{run_id}"): USERS,
    ("GET", "/api/v1/runs/{run_id}/events"): USERS,
    ("POST", "/api/v1/runs/{run_id}/cancel"): USERS,
    ("GET", "/api/v1/mcp-servers"): ADMIN,
    ("POST", "/api/v1/mcp-servers"): ADMIN,
    ("GET", "/api/v1/mcp-servers/{server_id}"): ADMIN,
    ("PATCH", "/api/v1/mcp-servers/{server_id}"): ADMIN,
    ("DELETE", "/api/v1/mcp-servers/{server_id}"): ADMIN,
    ("POST", "/api/v1/mcp-servers/{server_id}/refresh"): ADMIN,
    ("GET", "/api/v1/tools"): BUILD,
    ("POST", "/api/v1/knowledge-bases"): BUILD,
    ("GET", "/api/v1/knowledge-bases"): USERS,
    ("GET", "/api/v1/knowledge-bases/{kb_id}"): USERS,
    ("DELETE", "/api/v1/knowledge-bases/{kb_id}"): USERS,
    ("POST", "/api/v1/knowledge-bases/{kb_id}/grants"): USERS,
    ("DELETE", "/api/v1/knowledge-bases/{kb_id}/grants"): USERS,
    ("POST", "/api/v1/knowledge-bases/{kb_id}/documents"): USERS,
    ("GET", "/api/v1/knowledge-bases/{kb_id}/documents"): USERS,
    ("GET", "/api/v1/knowledge-bases/{kb_id}/documents/{doc_id}"): USERS,
    ("DELETE", "/api/v1/knowledge-bases/{kb_id}/documents/{doc_id}"): USERS,
    ("GET", "/api/v1/knowledge-bases/{kb_id}/search"): USERS,
    ("POST", "/api/v1/knowledge-bases/{kb_id}/reembed"): USERS,
    ("GET", "/api/v1/jobs/{job_id}"): USERS,
    ("POST", "/api/v1/jobs/{job_id}/cancel"): USERS,
    ("GET", "/api/v1/knowledge/searches/slowest"): ADMIN,
    ("GET", "/api/v1/knowledge/searches/zero-hits"): ADMIN,
    ("POST", "/api/v1/knowledge/purge"): ADMIN,
    ("GET", "/api/v1/knowledge/orphans"): ADMIN,
}
# Ids that exist nowhere: an allowed caller reaches the handler (404/422), nothing is changed.
PATH_VALUES = {
    "user_id": "999999",
    "group_id": "999999",
    "kb_id": "0" * 32,
    "doc_id": "0" * 32,
    "job_id": "0" * 32,
    "key_id": "nosuchkey0",
    "budget_id": "999999",
    "notification_id": "999999",
    "agent_id": "0" * 32,
    "n": "1",
    "conversation_id": "0" * 32,
    "message_id": "999999",
    "provider_id": "0" * 32,
    "run_id": "0" * 32,
    "server_id": "0" * 32,
}


# Calling these ends the caller's session; they get a fresh sign-in so later rules still run.
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/session")}


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[Role, str]
    appliance: Appliance

    def fresh_token(self, role: Role) -> str:
        user = self.appliance.services.users.find_user(f"{role.value}-user")
        assert user is not None
        return self.appliance.services.tokens.login(user).access_token


@pytest.fixture
async def world(home_dir) -> AsyncIterator[World]:
    settings = make_settings(
        home_dir, rate_limit_api_per_minute=100000, rate_limit_auth_per_minute=100000
    )
    appliance = Appliance(settings)
    appliance.initialise(PASSPHRASE)
    services = appliance.services
    tokens = {}
    for role in Role:
        user = services.users.create_user(f"{role.value}-user", "matrix password for tests", role)
        tokens[role] = services.tokens.login(user).access_token
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield World(client, tokens, appliance)
    appliance.seal()


def new_app() -> FastAPI:
    return create_app(Appliance(make_settings(Path("/nonexistent"))), with_ui=False)


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the app: the OpenAPI schema, plus the few routes that are not
    in it (the schema itself and the API docs), found on the app's top level."""
    found = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    for route in app.routes:
        if isinstance(route, Route) and route.methods:
            found.extend((method, route.path) for method in sorted(route.methods - {"HEAD"}))
    return found


def unruled(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(set(api_routes(app)) - set(RULES))


def test_a_route_without_a_rule_is_caught() -> None:
    app = new_app()

    @app.post("/api/v1/something-new")
    async def something_new() -> None:
        return None

    assert unruled(app) == [("POST", "/api/v1/something-new")]


def test_every_route_has_a_rule() -> None:
    routes = set(api_routes(new_app()))
    missing = sorted(routes - set(RULES))
    assert missing == [], f"routes without an authorization rule: {missing}"
    stale = sorted(set(RULES) - routes)
    assert stale == [], f"rules for routes that no longer exist: {stale}"


async def _call(client: httpx.AsyncClient, method: str, path: str, token: str | None) -> int:
    url = path.format(**PATH_VALUES)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = await client.request(method, url, headers=headers, json=body)
    return response.status_code


async def test_matrix(world: World) -> None:
    """Every rule × anonymous and every role; all failures are reported together."""
    failures = []
    for method, path in sorted(RULES):
        rule = RULES[(method, path)]
        anonymous = await _call(world.client, method, path, None)
        if rule == PUBLIC:
            if anonymous in (401, 403):
                failures.append(f"{method} {path}: anonymous refused ({anonymous})")
            continue
        if anonymous != 401:
            failures.append(f"{method} {path}: anonymous got {anonymous}, expected 401")
        assert isinstance(rule, frozenset)
        for role, token in world.tokens.items():
            if (method, path) in SESSION_ENDING:
                token = world.fresh_token(role)
            status = await _call(world.client, method, path, token)
            if role in rule and status in (401, 403):
                failures.append(f"{method} {path}: {role} refused ({status})")
            elif role not in rule and status != 403:
                failures.append(f"{method} {path}: {role} got {status}, expected 403")
    assert failures == []


async def test_another_users_api_key_is_invisible(world: World) -> None:
    services = world.appliance.services
    admin = services.users.find_user("admin-user")
    assert admin is not None
    key, _ = services.api_keys.create(admin.id, "admin's key", ["chat"])
    member = {"Authorization": f"Bearer {world.tokens[Role.MEMBER]}"}
    listed = await world.client.get("/api/v1/api-keys", headers=member)
    assert key.id not in {k["id"] for k in listed.json()}
    everyone = await world.client.get("/api/v1/api-keys?all=true", headers=member)
    assert key.id not in {k["id"] for k in everyone.json()}
    revoke = await world.client.delete(f"/api/v1/api-keys/{key.id}", headers=member)
    assert revoke.status_code == 404
    assert services.api_keys.get(key.id).revoked_at is None


async def test_another_users_agent_and_conversation(world: World) -> None:
    """Every agent and conversation route on a resource that exists but is someone else's:
    an unshared agent is 404 for every other non-admin, a use-only grant gives 403 on
    changes, and a conversation is 404 for everyone but its owner (admins included)."""
    services = world.appliance.services
    builder = services.users.find_user("builder-user")
    member = services.users.find_user("member-user")
    assert builder is not None and member is not None
    doc = {"name": "Private", "model": {"provider": "local", "model": "m"}}
    agent = services.agents.create(builder, doc)
    conv = services.conversations.create(builder, agent.id, 1)
    answer = services.conversations.append(builder, conv["id"], [{"role": "assistant"}])[0]
    values = {"agent_id": agent.id, "n": "1", "conversation_id": conv["id"]}
    values["message_id"] = str(answer["id"])

    async def status(method: str, path: str, role: Role) -> int:
        url = path.format(**{**PATH_VALUES, **values})
        if path.endswith("/diff"):
            url += "?from=1&to=1"
        # Valid bodies, so the answer is about the resource, not the request's shape.
        body = {"PATCH": {"title": "mine now"}, "POST": {"thumbs": 1}}.get(method)
        headers = {"Authorization": f"Bearer {world.tokens[role]}"}
        return (await world.client.request(method, url, headers=headers, json=body)).status_code

    owned = [(m, p) for m, p in RULES if "{agent_id}" in p or "{conversation_id}" in p]
    failures = []
    for method, path in owned:
        member_may = "{agent_id}" in path and Role.MEMBER in RULES[(method, path)]
        if member_may and (got := await status(method, path, Role.MEMBER)) != 404:
            failures.append(f"{method} {path}: unshared member got {got}")
        if "{conversation_id}" in path:
            for role in (Role.ADMIN, Role.MEMBER):
                if (got := await status(method, path, role)) != 404:
                    failures.append(f"{method} {path}: {role} got {got}")
    services.agents.share(builder, agent.id, "use", user_id=member.id)
    if (got := await status("GET", "/api/v1/agents/{agent_id}", Role.MEMBER)) != 200:
        failures.append(f"shared GET got {got}")
    assert failures == []
    # Nothing above changed the owner's agent or conversation.
    assert services.agents.get(builder, agent.id).latest_version == 1
    assert services.conversations.get(builder, conv["id"])["title"] is None
    assert services.conversations.messages(builder, conv["id"])[0]["feedback"] is None
