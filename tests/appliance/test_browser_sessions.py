"""Browser sessions: HttpOnly SameSite=Strict cookie, CSRF on state changes, timeouts, revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from appliance import Appliance
from appliance.identity.models import Role
from appliance.identity.session_models import AuthSession
from appliance.store.schema import utcnow
from appliance.web import create_app
from tests.conftest import PASSPHRASE, make_settings

PASSWORD = "browser session password 1"


@pytest.fixture
async def setup(home_dir) -> AsyncIterator[tuple[Appliance, httpx.AsyncClient]]:
    settings = make_settings(home_dir, rate_limit_auth_per_minute=1000)
    appliance = Appliance(settings)
    appliance.initialise(PASSPHRASE)
    appliance.services.users.create_user("alice", PASSWORD, Role.MEMBER)
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield appliance, client
    appliance.seal()


async def _sign_in(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/v1/auth/session", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


async def test_cookie_is_httponly_strict_and_signs_in(setup) -> None:
    _, client = setup
    response = await client.post(
        "/api/v1/auth/session", json={"username": "alice", "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("enclave_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; set over TLS
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["via"] == "cookie"
    assert me.json()["username"] == "alice"


async def test_wrong_password_sets_no_cookie(setup) -> None:
    _, client = setup
    response = await client.post(
        "/api/v1/auth/session", json={"username": "alice", "password": "not the password at all"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert "set-cookie" not in response.headers


async def test_state_changes_need_the_csrf_token(setup) -> None:
    _, client = setup
    csrf = await _sign_in(client)
    body = {"current_password": PASSWORD, "new_password": "another long password 22"}
    missing = await client.post("/api/v1/auth/password", json=body)
    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_failed"
    wrong = await client.post(
        "/api/v1/auth/password", json=body, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    ok = await client.post("/api/v1/auth/password", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 204
    # A password change ends every session, this one included.
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_sign_out_clears_and_revokes(setup) -> None:
    _, client = setup
    csrf = await _sign_in(client)
    cookie = client.cookies.get("enclave_session")
    out = await client.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert (
        'enclave_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    replay = await client.get("/api/v1/auth/me", cookies={"enclave_session": cookie})
    assert replay.status_code == 401


async def test_tampered_cookie_is_rejected(setup) -> None:
    _, client = setup
    await _sign_in(client)
    cookie = client.cookies.get("enclave_session")
    assert cookie
    client.cookies.clear()
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    response = await client.get("/api/v1/auth/me", cookies={"enclave_session": forged})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
async def test_idle_and_absolute_timeouts(setup, column: str) -> None:
    appliance, client = setup
    await _sign_in(client)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    past = utcnow() - timedelta(days=30)
    appliance.db.run_write(lambda s: s.execute(update(AuthSession).values({column: past})))
    assert (await client.get("/api/v1/auth/me")).status_code == 401
