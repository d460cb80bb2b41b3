"""The identity API end to end, in-process: a real SQLCipher appliance, real Argon2 hashes,
real JWTs and API keys. Each test checks what a user or a security officer would notice."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from appliance import Appliance
from appliance.web import create_app
from tests.conftest import PASSPHRASE, make_settings

ADMIN, ADMIN_PW = "root-admin", "staple horse battery correct"
MEMBER_PW = "purple elephant sings quietly"
AUTH = "/api/v1/auth/"  # paths in tests are relative to the client's base URL, /api/v1/


@pytest.fixture
def unsealed(home_dir: Path) -> Iterator[Appliance]:
    limits = {"rate_limit_auth_per_minute": 1000, "rate_limit_api_per_minute": 10000}
    appliance = Appliance(make_settings(home_dir, **limits))
    appliance.initialise(PASSPHRASE)
    yield appliance
    appliance.seal()


@pytest.fixture
async def c(unsealed: Appliance) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(unsealed, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/api/v1/") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(c: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    r = await c.post("auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def me(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.get("auth/me", headers=bearer(token))


@pytest.fixture
async def admin(c: httpx.AsyncClient) -> str:
    """The first admin's access token."""
    r = await c.post("auth/first-admin", json={"username": ADMIN, "password": ADMIN_PW})
    assert r.status_code == 201, r.text
    return (await login(c, ADMIN, ADMIN_PW))["access_token"]


async def new_user(c: httpx.AsyncClient, admin: str, username: str, role: str = "member") -> int:
    body = {"username": username, "password": MEMBER_PW, "role": role}
    r = await c.post("users", json=body, headers=bearer(admin))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def call(
    c: httpx.AsyncClient, method: str, path: str, token: str | None = None, body: Any = None
) -> httpx.Response:
    return await c.request(method, path, json=body, headers=bearer(token) if token else None)


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code


async def test_first_admin_once_then_login_and_me(c: httpx.AsyncClient) -> None:
    body = {"username": ADMIN, "password": ADMIN_PW, "display_name": "Root"}
    first = await c.post("auth/first-admin", json=body)
    assert first.status_code == 201 and first.json()["role"] == "admin"
    again = await c.post("auth/first-admin", json={**body, "username": "intruder"})
    assert_problem(again, 409, "conflict")
    tokens = await login(c, ADMIN, ADMIN_PW)
    assert tokens["token_type"] == "bearer"
    assert tokens["access_token"] and tokens["refresh_token"]
    assert tokens["expires_in"] == 15 * 60
    who = await me(c, tokens["access_token"])
    assert who.status_code == 200 and who.json()["username"] == ADMIN
    assert who.json()["via"] == "jwt" and who.json()["scopes"] is None
    assert_problem(await c.get("auth/me"), 401, "authentication_required")


async def test_concurrent_first_admin_requests_create_one_admin(
    c: httpx.AsyncClient,
) -> None:
    # Regression: the "no users yet" check ran outside the insert's transaction, so racing
    # first-run requests each got 201 and an attacker could slip in a second admin unseen.
    bodies = [{"username": f"racer{i}", "password": ADMIN_PW} for i in range(4)]
    rs = await asyncio.gather(*(c.post("auth/first-admin", json=b) for b in bodies))
    assert sorted(r.status_code for r in rs) == [201, 409, 409, 409]
    winner = next(r.json()["username"] for r in rs if r.status_code == 201)
    token = (await login(c, winner, ADMIN_PW))["access_token"]
    users = await c.get("users", headers=bearer(token))
    assert [u["username"] for u in users.json()] == [winner]


async def test_wrong_password_and_unknown_user_look_the_same(
    c: httpx.AsyncClient, admin: str
) -> None:
    wrong = await c.post("auth/login", json={"username": ADMIN, "password": "nope" * 4})
    unknown = await c.post("auth/login", json={"username": "nobody", "password": ADMIN_PW})
    for r in (wrong, unknown):
        assert_problem(r, 401, "invalid_credentials")
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.json()["title"] == unknown.json()["title"]
    assert "context" not in wrong.json() and "context" not in unknown.json()


async def test_brute_force_locks_account_and_is_audited(c: httpx.AsyncClient, admin: str) -> None:
    await new_user(c, admin, "victim")
    for i in range(5):
        r = await c.post("auth/login", json={"username": "victim", "password": f"guess {i}"})
        assert_problem(r, 401, "invalid_credentials")
    locked = await c.post("auth/login", json={"username": "victim", "password": MEMBER_PW})
    assert_problem(locked, 401, "invalid_credentials")
    # Indistinguishable from an unknown user: no lock time is revealed.
    unknown = await c.post("auth/login", json={"username": "nobody-here", "password": MEMBER_PW})
    assert locked.json() | {"instance": None} == unknown.json() | {"instance": None}
    assert "retry-after" not in locked.headers
    log = await call(c, "GET", "audit?action=login&limit=1000", admin)
    assert log.status_code == 200
    failures = [e for e in log.json() if e["outcome"] == "failure" and e["target"] == "victim"]
    assert len(failures) == 6
    assert all(e["source_ip"] == "127.0.0.1" for e in failures)


def _hs512(claims: dict[str, Any], key: bytes) -> str:
    with warnings.catch_warnings():  # PyJWT warns that 32 bytes is short for SHA-512
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm="HS512")


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_forged_and_malformed_jwts_are_rejected(
    c: httpx.AsyncClient, admin: str, unsealed: Appliance
) -> None:
    key = unsealed.current_key().derive("jwt-signing")
    claims = _claims(admin)
    # Control: the same claims signed the real way are accepted, so each refusal below is
    # down to the one thing changed.
    assert (await me(c, jwt.encode(claims, key, algorithm="HS256"))).status_code == 200

    head, payload, sig = admin.split(".")
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    now = int(time.time())
    expired = {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
    no_sid = {k: v for k, v in claims.items() if k != "sid"}
    forged = {
        "tampered signature": f"{head}.{payload}.{flipped}",
        "expired": jwt.encode(expired, key, algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "HS512": _hs512(claims, key),
        "no sid": jwt.encode(no_sid, key, algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "other-api"}, key, algorithm="HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "evil"}, key, algorithm="HS256"),
        "wrong key": jwt.encode(claims, b"k" * 32, algorithm="HS256"),
        "another sub": jwt.encode({**claims, "sub": "999"}, key, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }
    for name, token in forged.items():
        r = await me(c, token)
        assert r.status_code == 401, name
        assert r.json()["code"] == "invalid_token", name
        assert r.headers["www-authenticate"].startswith("Bearer"), name
    basic = await c.get("auth/me", headers={"Authorization": "Basic cm9vdDpwdw=="})
    assert_problem(basic, 401, "invalid_token")
    assert (await c.get("auth/me", headers={"Authorization": "Bearer "})).status_code == 401


async def test_refresh_rotation_and_reuse_ends_session(c: httpx.AsyncClient, admin: str) -> None:
    first = await login(c, ADMIN, ADMIN_PW)
    r = await c.post("auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await me(c, second["access_token"])).status_code == 200
    # The old refresh token is replayed (stolen copy): the whole session ends.
    replay = await c.post("auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(replay, 401, "invalid_token")
    assert "already used" in replay.json()["detail"]
    assert_problem(await me(c, second["access_token"]), 401, "invalid_token")
    assert_problem(await me(c, first["access_token"]), 401, "invalid_token")
    later = await c.post("auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_problem(later, 401, "invalid_token")
    # Other sessions of the same user are untouched.
    assert (await me(c, admin)).status_code == 200
    log = await c.get("audit", params={"action": "token.reuse"}, headers=bearer(admin))
    assert [e["outcome"] for e in log.json()] == ["denied"]
    for bad in ("nodot", "abc.def", "x" * 150 + "." + "y" * 40):
        r = await c.post("auth/refresh", json={"refresh_token": bad})
        assert_problem(r, 401, "invalid_token")


async def test_logout_ends_session_at_once(c: httpx.AsyncClient, admin: str) -> None:
    tokens = await login(c, ADMIN, ADMIN_PW)
    assert (await c.post("auth/logout", headers=bearer(tokens["access_token"]))).status_code == 204
    assert_problem(await me(c, tokens["access_token"]), 401, "invalid_token")
    r = await c.post("auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_problem(r, 401, "invalid_token")
    assert (await me(c, admin)).status_code == 200


async def test_password_change(c: httpx.AsyncClient, admin: str) -> None:
    await new_user(c, admin, "alice")
    tokens = await login(c, "alice", MEMBER_PW)
    access, path = tokens["access_token"], "auth/password"
    new_pw = "a brand new long passphrase"
    body = {"current_password": "not my password", "new_password": new_pw}
    wrong = await call(c, "POST", path, access, body)
    assert_problem(wrong, 401, "invalid_credentials")
    good = {"current_password": MEMBER_PW}
    for weak in ("short", "password1234", "alice-is-my-name-ok"):
        r = await call(c, "POST", path, access, {**good, "new_password": weak})
        assert_problem(r, 422, "weak_password")
    assert (await me(c, access)).status_code == 200  # refusals changed nothing
    assert (await call(c, "POST", path, access, {**body, **good})).status_code == 204
    assert_problem(await me(c, access), 401, "invalid_token")
    r = await c.post("auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_problem(r, 401, "invalid_token")
    old = await c.post("auth/login", json={"username": "alice", "password": MEMBER_PW})
    assert_problem(old, 401, "invalid_credentials")
    fresh = await login(c, "alice", new_pw)
    assert (await me(c, fresh["access_token"])).json()["username"] == "alice"


async def test_admin_reset_and_disable_end_sessions(c: httpx.AsyncClient, admin: str) -> None:
    bob = await new_user(c, admin, "bob")
    before = await login(c, "bob", MEMBER_PW)
    reset_pw = "admin chose this passphrase"
    r = await call(c, "POST", f"users/{bob}/password", admin, {"new_password": reset_pw})
    assert r.status_code == 204
    assert_problem(await me(c, before["access_token"]), 401, "invalid_token")
    after = await login(c, "bob", reset_pw)
    key = await _key(c, after["access_token"], ["chat"])
    r = await c.patch(f"users/{bob}", json={"disabled": True}, headers=bearer(admin))
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert_problem(await me(c, after["access_token"]), 401, "invalid_token")
    assert_problem(await me(c, key["token"]), 401, "invalid_token")
    r = await c.post("auth/refresh", json={"refresh_token": after["refresh_token"]})
    assert_problem(r, 401, "invalid_token")
    denied = await c.post("auth/login", json={"username": "bob", "password": reset_pw})
    assert_problem(denied, 401, "invalid_credentials")
    await call(c, "PATCH", f"users/{bob}", admin, {"disabled": False})
    await login(c, "bob", reset_pw)


async def _key(c: httpx.AsyncClient, access: str, scopes: list[str]) -> dict[str, Any]:
    r = await c.post("api-keys", json={"name": "script", "scopes": scopes}, headers=bearer(access))
    assert r.status_code == 201, r.text
    return r.json()


async def test_api_key_scopes_and_revocation(c: httpx.AsyncClient, admin: str) -> None:
    chat = await _key(c, admin, ["chat"])
    assert chat["token"].startswith("enc_")
    who = await me(c, chat["token"])
    assert who.status_code == 200
    assert who.json()["via"] == "api_key" and who.json()["scopes"] == ["chat"]
    # An admin's key without the admin scope cannot administer.
    assert_problem(await call(c, "GET", "users", chat["token"]), 403, "forbidden")
    full = await _key(c, admin, ["admin", "chat"])
    listed = await c.get("users", headers=bearer(full["token"]))
    assert listed.status_code == 200 and [u["username"] for u in listed.json()] == [ADMIN]
    assert (await c.delete(f"api-keys/{full['id']}", headers=bearer(admin))).status_code == 204
    assert_problem(await call(c, "GET", "users", full["token"]), 401, "invalid_token")
    assert (await me(c, chat["token"])).status_code == 200
    keys = await c.get("api-keys", headers=bearer(admin))
    assert "token" not in keys.text and "key_hash" not in keys.text
    revoked = {k["id"]: k["revoked_at"] for k in keys.json()}
    assert revoked[full["id"]] is not None and revoked[chat["id"]] is None
    # A token with a valid id but a wrong secret is refused.
    forged = chat["token"][:-4] + ("AAAA" if not chat["token"].endswith("AAAA") else "BBBB")
    assert_problem(await me(c, forged), 401, "invalid_token")


async def test_api_key_rules(c: httpx.AsyncClient, admin: str) -> None:
    await new_user(c, admin, "carol")
    await new_user(c, admin, "dave")
    carol = (await login(c, "carol", MEMBER_PW))["access_token"]
    dave = (await login(c, "dave", MEMBER_PW))["access_token"]
    carols = await _key(c, carol, ["chat"])
    stolen = await c.delete(f"api-keys/{carols['id']}", headers=bearer(dave))
    assert_problem(stolen, 404, "not_found")
    missing = await c.delete("api-keys/0000000000", headers=bearer(dave))
    assert stolen.json()["detail"] == missing.json()["detail"]
    assert (await me(c, carols["token"])).status_code == 200
    body = {"name": "child", "scopes": ["chat"]}
    minted = await call(c, "POST", "api-keys", carols["token"], body)
    assert_problem(minted, 403, "forbidden")
    bad = await call(c, "POST", "api-keys", carol, {**body, "scopes": ["root"]})
    assert_problem(bad, 422, "invalid_request")
    assert "root" in bad.json()["detail"]
    # A member asking for everyone's keys only sees their own.
    everyone = await c.get("api-keys?all=true", headers=bearer(dave))
    assert everyone.status_code == 200 and everyone.json() == []
    # The owner revokes their own key; it stops working at once.
    assert (await c.delete(f"api-keys/{carols['id']}", headers=bearer(carol))).status_code == 204
    assert_problem(await me(c, carols["token"]), 401, "invalid_token")


async def test_users_and_groups_admin_api(c: httpx.AsyncClient, admin: str) -> None:
    erin = await new_user(c, admin, "Erin", role="builder")
    dup = await call(c, "POST", "users", admin, {"username": "ERIN", "password": MEMBER_PW})
    assert_problem(dup, 409, "conflict")
    got = await c.get(f"users/{erin}", headers=bearer(admin))
    assert got.json()["username"] == "Erin" and got.json()["role"] == "builder"
    assert "password" not in got.text
    for method, path in [(m, "users/9999") for m in ("GET", "PATCH", "DELETE")] + [
        ("GET", "groups/9999/members")
    ]:
        body = {"disabled": True} if method == "PATCH" else None
        r = await call(c, method, path, admin, body)
        assert_problem(r, 404, "not_found")
    gid = (await call(c, "POST", "groups", admin, {"name": "ops"})).json()["id"]
    assert_problem(await call(c, "POST", "groups", admin, {"name": "ops"}), 409, "conflict")
    assert (await c.put(f"groups/{gid}/members/{erin}", headers=bearer(admin))).status_code == 204
    members = await c.get(f"groups/{gid}/members", headers=bearer(admin))
    assert [u["username"] for u in members.json()] == ["Erin"]
    r = await c.delete(f"groups/{gid}/members/{erin}", headers=bearer(admin))
    assert r.status_code == 204
    assert (await c.get(f"groups/{gid}/members", headers=bearer(admin))).json() == []
    assert (await c.delete(f"groups/{gid}", headers=bearer(admin))).status_code == 204
    assert (await c.get("groups", headers=bearer(admin))).json() == []

    member = await new_user(c, admin, "frank")
    frank = (await login(c, "frank", MEMBER_PW))["access_token"]
    assert_problem(await c.get("users", headers=bearer(frank)), 403, "forbidden")
    promote = await call(c, "PATCH", f"users/{member}", frank, {"role": "admin"})
    assert_problem(promote, 403, "forbidden")

    root = (await me(c, admin)).json()["id"]
    for method, body in (
        ("PATCH", {"disabled": True}),
        ("PATCH", {"role": "member"}),
        ("DELETE", None),
    ):
        last = await call(c, method, f"users/{root}", admin, body)
        assert_problem(last, 409, "conflict")
    assert (await me(c, admin)).json()["role"] == "admin"
    assert (await c.delete(f"users/{member}", headers=bearer(admin))).status_code == 204
    assert_problem(await me(c, frank), 401, "invalid_token")


async def test_audit_verify_export_and_roles(c: httpx.AsyncClient, admin: str) -> None:
    await new_user(c, admin, "grace", role="auditor")
    await new_user(c, admin, "heidi")
    grace = (await login(c, "grace", MEMBER_PW))["access_token"]
    heidi = (await login(c, "heidi", MEMBER_PW))["access_token"]
    verify = (await c.get("audit/verify", headers=bearer(admin))).json()
    assert verify["ok"] is True and verify["count"] > 0
    csv = await c.get("audit/export?format=csv", headers=bearer(admin))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.splitlines()
    assert lines[0].startswith("id,created_at,actor,action")
    assert len(lines) > 1 and any(",user.create," in line for line in lines)
    as_auditor = await c.get("audit", headers=bearer(grace))
    assert as_auditor.status_code == 200 and any(
        e["action"] == "user.create" for e in as_auditor.json()
    )
    assert (await c.get("audit/verify", headers=bearer(grace))).json()["ok"] is True
    assert_problem(await c.get("users", headers=bearer(grace)), 403, "forbidden")
    for path in ("audit", "audit/verify", "audit/export"):
        assert_problem(await c.get(path, headers=bearer(heidi)), 403, "forbidden")
    assert_problem(await c.get("audit"), 401, "authentication_required")


async def test_sign_in_requests_are_rate_limited(home_dir: Path) -> None:
    appliance = Appliance(make_settings(home_dir, rate_limit_auth_per_minute=5))
    appliance.initialise(PASSPHRASE)
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            refresh = [{"refresh_token": f"a.b{i}"} for i in range(6)]
            codes = [(await c.post(AUTH + "refresh", json=b)).status_code for b in refresh]
            assert codes == [401] * 5 + [429]
            limited = await c.post(AUTH + "login", json={"username": ADMIN, "password": "x"})
            assert_problem(limited, 429, "rate_limited")
            assert int(limited.headers["retry-after"]) >= 1
            assert (await c.get("/healthz")).status_code == 200
    finally:
        appliance.seal()
