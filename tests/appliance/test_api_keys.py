"""API keys on a real SQLCipher home: tokens, hashing, revocation, expiry, rekey."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from appliance import Appliance
from appliance.errors import InvalidCredentials, InvalidRequest, NotFound
from appliance.identity.api_keys import ApiKeyService
from appliance.identity.models import ApiKey, User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.store.schema import Installation, utcnow
from tests.conftest import PASSPHRASE

GOOD = "violet kettle under moonlight"
TOKEN = re.compile(r"enc_[0-9a-f]{10}_[A-Za-z0-9_-]{43}")


class Now:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def users(appliance: Appliance) -> UserService:
    return UserService(appliance.db, hasher=make_hasher(1, 64, 1))


@pytest.fixture
def alice(users: UserService) -> User:
    return users.create_user("alice", GOOD, "admin")


@pytest.fixture
def bob(users: UserService) -> User:
    return users.create_user("bob", GOOD, "member")


@pytest.fixture
def keys(appliance: Appliance) -> ApiKeyService:
    return ApiKeyService(appliance.db)


def refused(keys: ApiKeyService, token: str) -> None:
    with pytest.raises(InvalidCredentials) as exc:
        keys.authenticate(token)
    assert exc.value.code == "invalid_credentials"
    assert exc.value.message == InvalidCredentials.default_message


def all_stored_text(appliance: Appliance) -> str:
    """Every text and binary value in every table, joined (to grep for secrets)."""
    parts: list[str] = []
    with appliance.db.reader.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                    elif value is not None:
                        parts.append(str(value))
    return "\n".join(parts)


def test_create_and_authenticate(keys: ApiKeyService, appliance: Appliance, bob: User) -> None:
    row, token = keys.create(bob.id, " ci runner ", ["chat", "agents:read", "chat"])
    assert TOKEN.fullmatch(token)
    assert row.name == "ci runner" and row.scope_list == ["agents:read", "chat"]
    assert token.startswith(f"enc_{row.id}_")
    key, user = keys.authenticate(token)
    assert key.id == row.id and user.id == bob.id and user.username == "bob"
    assert key.last_used_at is not None
    # Only an HMAC is stored: neither the token nor its secret is anywhere in the database.
    assert re.fullmatch(r"[0-9a-f]{64}", row.key_hash)
    secret = token.split("_", 2)[2]
    stored = all_stored_text(appliance)
    assert row.key_hash in stored
    assert token not in stored and secret not in stored
    assert row.key_hash != token and secret not in row.key_hash


def test_hmac_key_is_made_on_first_use(
    appliance: Appliance, keys: ApiKeyService, bob: User
) -> None:
    with appliance.db.read() as session:
        inst = session.get(Installation, 1)
        assert inst is not None and inst.api_key_hmac_key is None
    keys.create(bob.id, "k", ["chat"])
    with appliance.db.read() as session:
        inst = session.get(Installation, 1)
        assert inst is not None and inst.api_key_hmac_key is not None
        assert len(inst.api_key_hmac_key) == 32


def test_revoked_key_is_refused_at_once(keys: ApiKeyService, alice: User, bob: User) -> None:
    row, token = keys.create(bob.id, "laptop", ["chat"])
    keys.authenticate(token)
    other = UserService(keys.db).create_user("mallory", GOOD, "member")
    with pytest.raises(NotFound):
        keys.revoke(row.id, other)  # not theirs: looks absent
    keys.authenticate(token)
    revoked = keys.revoke(row.id, bob)
    assert revoked.revoked_at is not None
    refused(keys, token)
    assert keys.revoke(row.id, alice).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(NotFound):
        keys.revoke("0000000000", alice)


def test_admin_can_revoke_anyones_key(keys: ApiKeyService, alice: User, bob: User) -> None:
    row, token = keys.create(bob.id, "laptop", ["chat"])
    keys.revoke(row.id, alice)
    refused(keys, token)


def test_expired_key_is_refused(appliance: Appliance, keys: ApiKeyService, bob: User) -> None:
    row, token = keys.create(bob.id, "temp", ["chat"], expires_at=utcnow() + timedelta(hours=1))
    keys.authenticate(token)
    with appliance.db.write() as session:
        stored = session.get(ApiKey, row.id)
        assert stored is not None
        stored.expires_at = utcnow() - timedelta(seconds=1)
    refused(keys, token)


def test_expiry_must_be_future_and_zoned(keys: ApiKeyService, bob: User) -> None:
    with pytest.raises(InvalidRequest, match="future"):
        keys.create(bob.id, "k", ["chat"], expires_at=utcnow() - timedelta(minutes=1))
    with pytest.raises(InvalidRequest, match="time zone"):
        keys.create(bob.id, "k", ["chat"], expires_at=datetime(2099, 1, 1))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "enc_",
        "enc_x_y",
        "enc_0123456789_",
        "Bearer enc_0123456789_" + "A" * 43,
        "enc_0123456789_" + "A" * 43,  # well-formed, unknown id
        "j8Hq2xP0vN4kLm7sT1wR9yB3cF6gD5aE",
        "enc_" + "\x00" * 60,
    ],
)
def test_malformed_or_unknown_tokens_are_refused(
    keys: ApiKeyService, bob: User, token: str
) -> None:
    keys.create(bob.id, "k", ["chat"])
    refused(keys, token)


def test_wrong_secret_for_a_real_id_is_refused(keys: ApiKeyService, bob: User) -> None:
    row, token = keys.create(bob.id, "k", ["chat"])
    _, other_token = keys.create(bob.id, "k2", ["chat"])
    secret = token.split("_", 2)[2]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    refused(keys, f"enc_{row.id}_{flipped}")
    refused(keys, f"enc_{row.id}_{other_token.split('_', 2)[2]}")  # a secret of another key
    refused(keys, token.upper())


def test_disabled_users_key_is_refused(keys: ApiKeyService, users: UserService, bob: User) -> None:
    _, token = keys.create(bob.id, "k", ["chat"])
    users.set_disabled(bob.id, True)
    refused(keys, token)
    users.set_disabled(bob.id, False)
    keys.authenticate(token)


def test_deleted_users_keys_go_with_them(
    keys: ApiKeyService, users: UserService, bob: User
) -> None:
    _, token = keys.create(bob.id, "k", ["chat"])
    users.delete_user(bob.id)
    assert keys.list_all() == []
    refused(keys, token)


@pytest.mark.parametrize("scopes", [["chat", "root"], [], "chat"])
def test_bad_scopes_are_invalid_request(keys: ApiKeyService, bob: User, scopes: list[str]) -> None:
    with pytest.raises(InvalidRequest, match="scope"):
        keys.create(bob.id, "k", scopes)


def test_bad_name_and_unknown_user(keys: ApiKeyService, bob: User) -> None:
    with pytest.raises(InvalidRequest, match="name"):
        keys.create(bob.id, "   ", ["chat"])
    with pytest.raises(InvalidRequest, match="name"):
        keys.create(bob.id, "n" * 101, ["chat"])
    with pytest.raises(NotFound):
        keys.create(9999, "k", ["chat"])


def test_lists(keys: ApiKeyService, alice: User, bob: User) -> None:
    a, _ = keys.create(alice.id, "a", ["admin"])
    b, _ = keys.create(bob.id, "b", ["knowledge:read", "knowledge:write", "agents:write"])
    assert [k.id for k in keys.list_for_user(bob.id)] == [b.id]
    assert {k.id for k in keys.list_all()} == {a.id, b.id}
    assert keys.get(b.id).scope_list == ["agents:write", "knowledge:read", "knowledge:write"]
    with pytest.raises(NotFound):
        keys.get("nope")


def test_last_used_is_written_at_most_once_a_minute(appliance: Appliance, bob: User) -> None:
    now = Now()
    keys = ApiKeyService(appliance.db, clock=now)
    row, token = keys.create(bob.id, "k", ["chat"])
    first = keys.authenticate(token)[0].last_used_at
    now.value += timedelta(seconds=30)
    keys.authenticate(token)
    assert keys.get(row.id).last_used_at == first
    now.value += timedelta(seconds=31)
    keys.authenticate(token)
    assert keys.get(row.id).last_used_at == now.value


def test_keys_survive_a_rekey(appliance: Appliance, keys: ApiKeyService, bob: User) -> None:
    _, token = keys.create(bob.id, "k", ["chat"])
    old_key = appliance.current_key().key_id
    appliance.rekey(PASSPHRASE)
    assert appliance.current_key().key_id != old_key
    key, user = ApiKeyService(appliance.db).authenticate(token)
    assert user.id == bob.id and key.revoked_at is None
    appliance.seal()
    appliance.unseal(PASSPHRASE)
    assert ApiKeyService(appliance.db).authenticate(token)[1].id == bob.id
