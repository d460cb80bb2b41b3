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
}
# Ids that exist nowhere: an allowed caller reaches the handler (404/422), nothing is changed.
PATH_VALUES = {"user_id": "999999", "group_id": "999999", "key_id": "nosuchkey0"}


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
