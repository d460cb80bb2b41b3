"""User and group ids are never given out twice (migration 0015): what names an id without a
foreign key — the credit ledger, analytics, budgets — keeps naming the same account or group."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from appliance import Appliance
from appliance.errors import Conflict, NotFound
from appliance.keys.secret import DataKey
from appliance.store.database import Database
from appliance.store.migrate import current_revision, migrate
from tests.appliance.migration_copies import migrations_before

PASSWORD = "violet kettle under moonlight"


def test_a_deleted_users_id_is_not_reused(appliance: Appliance) -> None:
    users = appliance.services.users
    users.create_user("root", PASSWORD, "admin")
    bob = users.create_user("bob", PASSWORD, "member")
    users.delete_user(bob.id)
    carol = users.create_user("carol", PASSWORD, "member")
    assert carol.id > bob.id
    users.delete_user(carol.id)
    dave = users.create_user("dave", PASSWORD, "member")
    assert dave.id > carol.id


def test_a_deleted_groups_id_is_not_reused(appliance: Appliance) -> None:
    groups = appliance.services.groups
    groups.create_group("first")
    old = groups.create_group("team")
    groups.delete_group(old.id)
    new = groups.create_group("newteam")
    assert new.id > old.id


def test_budgets_go_with_their_user_or_group(appliance: Appliance) -> None:
    services = appliance.services
    budgets = services.metering.budgets
    services.users.create_user("root", PASSWORD, "admin")
    bob = services.users.create_user("bob", PASSWORD, "member")
    team = services.groups.create_group("team")
    other = services.groups.create_group("other")
    budgets.create("user", bob.id, "day", "hard", "5")
    budgets.create("group", team.id, "month", "hard", "50")
    kept = budgets.create("group", other.id, "month", "soft", "10")

    services.groups.delete_group(team.id)
    services.users.delete_user(bob.id)

    assert [b.id for b in budgets.all()] == [kept.id]
    newteam = services.groups.create_group("newteam")
    newbob = services.users.create_user("newbob", PASSWORD, "member")
    assert (newteam.id, newbob.id) != (team.id, bob.id)
    assert [b.subject_id for b in budgets.all()] == [other.id]


def test_a_failed_delete_leaves_the_budgets(appliance: Appliance) -> None:
    services = appliance.services
    admin = services.users.create_user("root", PASSWORD, "admin")
    budget = services.metering.budgets.create("user", admin.id, "day", "hard", "5")
    with pytest.raises(Conflict, match="admin"):
        services.users.delete_user(admin.id)  # the last admin stays
    with pytest.raises(NotFound):
        services.groups.delete_group(999)
    assert [b.id for b in services.metering.budgets.all()] == [budget.id]


def test_the_migration_starts_above_ids_the_credit_tables_name(tmp_path: Path) -> None:
    before = migrations_before(tmp_path, "0015")
    dek = DataKey.generate()
    db = Database(path=tmp_path / "enclave.db", dek=dek)
    try:
        migrate(db, dek, None, before)
        assert current_revision(db) == "0014_credit_open_holds"
        with db.write() as session:
            # A budget left behind by users 9 and group 4, deleted under the old numbering.
            for scope, subject in (("user", 9), ("group", 4)):
                session.execute(
                    text(
                        'INSERT INTO credit_budget (scope, subject_id, period, mode, "limit", '
                        "created_at, updated_at) VALUES (:scope, :subject, 'day', 'hard', 1, "
                        "'2026-12-01 09:00:00.000000', '2026-12-01 09:00:00.000000')"
                    ),
                    {"scope": scope, "subject": subject},
                )
        migrate(db, dek, None)
        with db.read() as session:
            rows = session.execute(text("SELECT name, value FROM id_high_water")).all()
        marks = {str(name): int(value) for name, value in rows}
        assert marks == {"user": 9, "group": 4}
    finally:
        db.dispose()
