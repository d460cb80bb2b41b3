"""Users, passwords and groups on a real SQLCipher home (Argon2id with small parameters)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from appliance import Appliance
from appliance.cli import app as cli_app
from appliance.errors import Conflict, InvalidCredentials, InvalidRequest, NotFound, WeakPassword
from appliance.identity.groups import GroupService
from appliance.identity.models import User
from appliance.identity.passwords import (
    blocklist,
    check_password_policy,
    hash_password,
    make_hasher,
    needs_rehash,
    verify_password,
)
from appliance.identity.throttle import IpThrottle
from appliance.identity.users import UserService, lock_duration
from appliance.store.schema import utcnow
from tests.conftest import PASSPHRASE

GOOD = "violet kettle under moonlight"
FAST = make_hasher(1, 64, 1)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(appliance: Appliance) -> UserService:
    return UserService(appliance.db, hasher=FAST)


@pytest.fixture
def alice(users: UserService) -> User:
    return users.create_user("Alice", GOOD, "admin", display_name="Alice A.")


def expect_invalid(exc: pytest.ExceptionInfo[InvalidCredentials]) -> None:
    assert exc.value.code == "invalid_credentials"
    assert exc.value.http_status == 401
    assert exc.value.message == InvalidCredentials.default_message


# --- password policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short pass", "at least 12 characters"),
        ("x" * 200 + "y" * 57, "at most 256 characters"),
        ("zzzzzzzzzzzzzzzz", "one character repeated"),
        ("my name is ALICE ok", "must not contain the username"),
        ("password1234", "too common"),
        ("PassWord1234", "too common"),
        ("qwertyuiop123", "too common"),
    ],
)
def test_policy_rejects_with_the_rule_named(password: str, fragment: str) -> None:
    with pytest.raises(WeakPassword, match=fragment) as exc:
        check_password_policy(password, "alice")
    assert exc.value.code == "weak_password"
    assert exc.value.http_status == 422


def test_policy_accepts_a_long_plain_passphrase() -> None:
    check_password_policy(GOOD, "alice")
    check_password_policy("x" * 255 + "y", "alice")  # no composition rules


def test_blocklist_is_bundled_lowercase() -> None:
    words = blocklist()
    assert len(words) >= 1000
    assert "password" in words and "iloveyou" in words
    assert all(w == w.lower() for w in words)


def test_hash_verify_and_rehash() -> None:
    encoded = hash_password(GOOD, FAST)
    assert encoded.startswith("$argon2id$")
    assert verify_password(encoded, GOOD, FAST)
    assert not verify_password(encoded, GOOD + "!", FAST)
    assert not verify_password("not a hash", GOOD, FAST)
    assert not needs_rehash(encoded, FAST)
    assert needs_rehash(encoded, make_hasher(2, 64, 1))


# --- accounts -------------------------------------------------------------------------------


def test_create_and_duplicate_is_conflict_in_any_case(users: UserService, alice: User) -> None:
    assert alice.username == "Alice" and alice.username_norm == "alice"
    assert alice.role == "admin" and not alice.disabled and alice.failed_logins == 0
    assert alice.password_hash != GOOD
    for name in ("Alice", "alice", "ALICE"):
        with pytest.raises(Conflict) as exc:
            users.create_user(name, GOOD, "member")
        assert exc.value.code == "conflict" and exc.value.http_status == 409
    assert [u.username for u in users.list_users()] == ["Alice"]


@pytest.mark.parametrize("name", ["ab", "a" * 65, "has space", "semi;colon", "ünï"])
def test_bad_username_is_invalid_request(users: UserService, name: str) -> None:
    with pytest.raises(InvalidRequest, match="username"):
        users.create_user(name, GOOD, "member")


def test_bad_role_is_invalid_request(users: UserService) -> None:
    with pytest.raises(InvalidRequest, match="Unknown role"):
        users.create_user("bob", GOOD, "superuser")


def test_weak_password_at_create(users: UserService) -> None:
    with pytest.raises(WeakPassword, match="username"):
        users.create_user("bob.smith", "bob.smith-is-here", "member")
    assert users.list_users() == []


def test_update_disable_delete_and_last_admin(users: UserService, alice: User) -> None:
    bob = users.create_user("bob@example", GOOD, "member")
    assert users.set_role(bob.id, "builder").role == "builder"
    assert users.set_display_name(bob.id, "  Bob  ").display_name == "Bob"
    with pytest.raises(Conflict, match="at least one enabled admin"):
        users.set_role(alice.id, "member")
    with pytest.raises(Conflict):
        users.set_disabled(alice.id, True)
    with pytest.raises(Conflict):
        users.delete_user(alice.id)
    users.set_role(bob.id, "admin")
    users.set_disabled(alice.id, True)
    assert users.get_user(alice.id).disabled
    users.delete_user(alice.id)
    with pytest.raises(NotFound):
        users.get_user(alice.id)
    assert users.find_user("ALICE") is None


def test_change_password(users: UserService, alice: User) -> None:
    new = "a brand new pass phrase"
    with pytest.raises(InvalidCredentials):
        users.change_password(alice.id, new, current_password="wrong one entirely")
    with pytest.raises(WeakPassword):
        users.change_password(alice.id, "alice alice alice")
    users.change_password(alice.id, new, current_password=GOOD)
    assert users.authenticate("alice", new).id == alice.id
    with pytest.raises(InvalidCredentials):
        users.authenticate("alice", GOOD)


# --- sign-in --------------------------------------------------------------------------------


def test_authenticate_success_any_case(users: UserService, alice: User) -> None:
    assert users.authenticate("alice", GOOD, "10.0.0.1").id == alice.id
    assert users.authenticate("ALICE", GOOD).id == alice.id


def test_wrong_password_and_unknown_user_look_the_same(users: UserService, alice: User) -> None:
    with pytest.raises(InvalidCredentials) as wrong:
        users.authenticate("alice", "not the password at all")
    with pytest.raises(InvalidCredentials) as unknown:
        users.authenticate("nobody", "not the password at all")
    expect_invalid(wrong)
    expect_invalid(unknown)
    assert wrong.value.to_problem() == unknown.value.to_problem()
    assert "retry_after" not in wrong.value.context


def test_disabled_user_is_refused_alike(users: UserService, alice: User) -> None:
    bob = users.create_user("bob", GOOD, "member")
    users.set_disabled(bob.id, True)
    with pytest.raises(InvalidCredentials) as exc:
        users.authenticate("bob", GOOD)
    expect_invalid(exc)


def test_lock_durations() -> None:
    assert lock_duration(4) is None
    assert lock_duration(5) == timedelta(minutes=1)
    assert lock_duration(6) == timedelta(minutes=2)
    assert lock_duration(10) == timedelta(minutes=32)
    assert lock_duration(11) == timedelta(hours=1)
    assert lock_duration(500) == timedelta(hours=1)


def test_lockout_after_five_failures_then_unlocks(
    appliance: Appliance, users: UserService, alice: User
) -> None:
    for _ in range(4):
        with pytest.raises(InvalidCredentials) as exc:
            users.authenticate("alice", "wrong password here")
        assert "_lock_s" not in exc.value.context
    with pytest.raises(InvalidCredentials) as exc:
        users.authenticate("alice", "wrong password here")
    assert exc.value.context["_lock_s"] == 60
    assert "retry_after" not in exc.value.context  # telling would confirm the account exists
    row = users.get_user(alice.id)
    assert row.failed_logins == 5 and row.locked_until is not None
    # Locked: the right password is refused too, with the same message and a retry time.
    with pytest.raises(InvalidCredentials) as locked:
        users.authenticate("alice", GOOD)
    expect_invalid(locked)
    assert 0 < locked.value.context["_lock_s"] <= 60
    # Time passes (the lock is in the row).
    with appliance.db.write() as session:
        stored = session.get(User, alice.id)
        assert stored is not None
        stored.locked_until = utcnow() - timedelta(seconds=1)
    assert users.authenticate("alice", GOOD).failed_logins == 0
    assert users.get_user(alice.id).locked_until is None


def test_failures_after_the_lock_double_it(appliance: Appliance, users: UserService) -> None:
    bob = users.create_user("bob", GOOD, "member")
    with appliance.db.write() as session:
        stored = session.get(User, bob.id)
        assert stored is not None
        stored.failed_logins = 6
    with pytest.raises(InvalidCredentials) as exc:
        users.authenticate("bob", "wrong password here")
    assert exc.value.context["_lock_s"] == 4 * 60


def test_rehash_on_login_when_parameters_change(appliance: Appliance, alice: User) -> None:
    stronger = make_hasher(2, 128, 1)
    service = UserService(appliance.db, hasher=stronger)
    assert service.authenticate("alice", GOOD).id == alice.id
    updated = service.get_user(alice.id)
    assert updated.password_hash != alice.password_hash
    assert "m=128,t=2" in updated.password_hash
    assert not needs_rehash(updated.password_hash, stronger)
    assert service.authenticate("alice", GOOD).password_hash == updated.password_hash


def test_per_ip_backoff(appliance: Appliance, alice: User) -> None:
    clock = Clock()
    throttle = IpThrottle(burst=3, per_minute=1)
    service = UserService(appliance.db, hasher=FAST, ip_throttle=throttle, monotonic=clock)
    for name in ("carol", "dave", "erin"):  # spraying unknown accounts
        with pytest.raises(InvalidCredentials):
            service.authenticate(name, "guess guess guess", "192.0.2.7")
    with pytest.raises(InvalidCredentials) as exc:
        service.authenticate("alice", GOOD, "192.0.2.7")  # refused before any check
    expect_invalid(exc)
    assert exc.value.context["retry_after"] == 60
    assert service.authenticate("alice", GOOD, "198.51.100.1").id == alice.id  # other address
    assert service.get_user(alice.id).failed_logins == 0  # the account was not charged
    clock.now += 60
    assert service.authenticate("alice", GOOD, "192.0.2.7").id == alice.id


def test_throttle_forgets_refilled_addresses() -> None:
    throttle = IpThrottle(burst=2, per_minute=60, max_entries=2)
    for address in ("a", "b", "c"):
        throttle.record_failure(address, 0.0)
    assert len(throttle._buckets) == 2
    assert throttle.retry_after("c", 0.0) == 0
    throttle.record_failure("c", 0.0)
    assert throttle.retry_after("c", 0.0) == 1
    assert throttle.retry_after("c", 5.0) == 0
    throttle.record_failure("d", 5.0)
    assert list(throttle._buckets) == ["d"]
    assert throttle.retry_after(None, 0.0) == 0


# --- groups ---------------------------------------------------------------------------------


def test_groups_membership_and_cascade(
    appliance: Appliance, users: UserService, alice: User
) -> None:
    groups = GroupService(appliance.db)
    bob = users.create_user("bob", GOOD, "member")
    team = groups.create_group(" research ")
    assert team.name == "research"
    with pytest.raises(Conflict):
        groups.create_group("research")
    with pytest.raises(InvalidRequest):
        groups.create_group("   ")
    groups.add_member(team.id, alice.id)
    groups.add_member(team.id, bob.id)
    groups.add_member(team.id, bob.id)  # idempotent
    assert [u.username for u in groups.list_members(team.id)] == ["Alice", "bob"]
    assert [g.name for g in groups.groups_of(bob.id)] == ["research"]
    with pytest.raises(NotFound):
        groups.add_member(team.id, 9999)
    with pytest.raises(NotFound):
        groups.add_member(9999, bob.id)
    groups.remove_member(team.id, alice.id)
    assert [u.username for u in groups.list_members(team.id)] == ["bob"]
    users.delete_user(bob.id)
    assert groups.list_members(team.id) == []
    groups.add_member(team.id, alice.id)
    groups.delete_group(team.id)
    assert groups.list_groups() == [] and groups.groups_of(alice.id) == []
    with pytest.raises(NotFound):
        groups.get_group(team.id)


# --- CLI ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_cli_users_add_and_list(
    appliance: Appliance, passphrase_file: Path, tmp_path: Path
) -> None:
    home = appliance.home.root
    appliance.seal()
    password_file = tmp_path / "pw.txt"
    password_file.write_text(GOOD + "\n")
    base = ["--home", str(home), "--passphrase-file", str(passphrase_file)]
    runner = CliRunner()
    add = ["users", "add", *base, "--username", "Root.Admin", "--role", "admin"]
    result = runner.invoke(cli_app, [*add, "--password-file", str(password_file)])
    assert result.exit_code == 0, result.output
    assert "created user Root.Admin (admin, id 1)" in result.stdout

    again = runner.invoke(cli_app, [*add, "--password-file", str(password_file)])
    assert again.exit_code == 1 and again.stderr.startswith("error: conflict: ")
    password_file.write_text("password1234\n")
    weak = ["users", "add", *base, "--username", "bob", "--role", "member"]
    result = runner.invoke(cli_app, [*weak, "--password-file", str(password_file)])
    assert result.exit_code == 1 and result.stderr.startswith("error: weak_password: ")

    listed = runner.invoke(cli_app, ["users", "list", *base])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == ["1\tRoot.Admin\tadmin\tenabled\t"]

    appliance.unseal(PASSPHRASE)
    assert UserService(appliance.db, hasher=PasswordHasher()).authenticate("root.admin", GOOD)
