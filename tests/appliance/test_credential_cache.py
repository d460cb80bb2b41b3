"""The verified-credential cache: it saves the database read, and never outlives a revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from appliance import Appliance
from appliance.identity.credential_cache import WATCHED_TABLES, CredentialCache
from appliance.identity.models import User
from appliance.web import create_app
from tests.appliance.test_auth_api import ADMIN, ADMIN_PW, bearer, login, me, new_user
from tests.conftest import PASSPHRASE, make_settings


class Tick:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_with_the_ttl_and_the_credential() -> None:
    tick = Tick()
    cache: CredentialCache[str] = CredentialCache(10, monotonic=tick)
    cache.put("a", "alice", cache.generation, None)
    cache.put("b", "bob", cache.generation, 2.0)  # the credential itself lapses in 2 s
    assert cache.get("a") == "alice" and cache.get("b") == "bob"
    tick.now += 2.5
    assert cache.get("a") == "alice" and cache.get("b") is None
    tick.now += 8
    assert cache.get("a") is None
    cache.put("c", "carol", cache.generation, -1.0)  # already lapsed: not kept
    assert cache.get("c") is None


def test_a_check_that_raced_a_change_is_not_kept() -> None:
    cache: CredentialCache[str] = CredentialCache(10)
    before = cache.generation
    cache.on_commit(frozenset({"user"}))  # e.g. the key was revoked while it was being checked
    cache.put("a", "alice", before, None)
    assert cache.get("a") is None and len(cache) == 0


def test_only_identity_tables_empty_it_and_size_is_bounded() -> None:
    cache: CredentialCache[int] = CredentialCache(10, max_entries=3)
    for i in range(5):
        cache.put(f"t{i}", i, cache.generation, None)
    assert len(cache) == 3 and cache.get("t0") is None and cache.get("t4") == 4
    cache.on_commit(frozenset({"conversation", "ledger_entry"}))
    assert cache.get("t4") == 4
    assert "api_key" in WATCHED_TABLES and "auth_session" in WATCHED_TABLES
    cache.on_commit(frozenset({"api_key"}))
    assert cache.get("t4") is None


def test_zero_ttl_turns_it_off() -> None:
    cache: CredentialCache[str] = CredentialCache(0)
    cache.put("a", "alice", cache.generation, None)
    assert not cache.enabled and cache.get("a") is None


def test_commit_feed_reports_orm_and_bulk_writes_but_not_rollbacks(
    appliance: Appliance,
) -> None:
    seen: list[frozenset[str]] = []
    appliance.db.commits.subscribe(seen.append)
    with appliance.db.write() as s:
        s.add(User(username="feed", username_norm="feed", password_hash="x", role="member"))
    assert seen[-1] == frozenset({"user"})
    with appliance.db.write() as s:
        s.execute(sa.update(User).where(User.username == "feed").values(display_name="F"))
    assert seen[-1] == frozenset({"user"})
    count = len(seen)
    with pytest.raises(RuntimeError), appliance.db.write() as s:
        s.execute(sa.update(User).values(display_name="never"))
        raise RuntimeError("abort")
    assert len(seen) == count  # rolled back: nothing changed, nothing published
    with appliance.db.read() as s:
        assert s.scalar(sa.select(User.display_name).where(User.username == "feed")) == "F"


@pytest.fixture
def unsealed(home_dir: Path) -> Iterator[Appliance]:
    limits = {"rate_limit_auth_per_minute": 1000, "rate_limit_api_per_minute": 10000}
    appliance = Appliance(make_settings(home_dir, auth_cache_seconds=60, **limits))
    appliance.initialise(PASSPHRASE)
    yield appliance
    appliance.seal()


@pytest.fixture
async def c(unsealed: Appliance) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(unsealed, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/api/v1/") as c:
        yield c


@pytest.fixture
async def admin(c: httpx.AsyncClient) -> str:
    r = await c.post("auth/first-admin", json={"username": ADMIN, "password": ADMIN_PW})
    assert r.status_code == 201, r.text
    return str((await login(c, ADMIN, ADMIN_PW))["access_token"])


async def test_a_revoked_api_key_fails_at_once_though_it_was_cached(
    c: httpx.AsyncClient, admin: str, unsealed: Appliance
) -> None:
    created = await c.post(
        "api-keys", json={"name": "ci", "scopes": ["chat"]}, headers=bearer(admin)
    )
    key_id, token = created.json()["id"], created.json()["token"]
    for _ in range(3):
        assert (await me(c, token)).status_code == 200
    cache = unsealed.services.credentials
    assert cache.get(token) is not None  # served from memory, not the database
    assert (await c.delete(f"api-keys/{key_id}", headers=bearer(admin))).status_code == 204
    r = await me(c, token)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_disabling_a_user_or_changing_a_role_applies_to_the_next_request(
    c: httpx.AsyncClient, admin: str
) -> None:
    user_id = await new_user(c, admin, "dora", role="builder")
    token = (await login(c, "dora", "purple elephant sings quietly"))["access_token"]
    assert (await me(c, token)).json()["role"] == "builder"
    r = await c.patch(f"users/{user_id}", json={"role": "member"}, headers=bearer(admin))
    assert r.status_code == 200, r.text
    assert (await me(c, token)).json()["role"] == "member"
    r = await c.patch(f"users/{user_id}", json={"disabled": True}, headers=bearer(admin))
    assert r.status_code == 200, r.text
    assert (await me(c, token)).status_code == 401


async def test_logout_ends_a_cached_access_token(c: httpx.AsyncClient, admin: str) -> None:
    assert (await me(c, admin)).status_code == 200
    assert (await c.post("auth/logout", headers=bearer(admin))).status_code == 204
    assert (await me(c, admin)).status_code == 401
