"""Who is told when a budget is reached: the admins, and every user the budget limits (a group
budget: each member of the group), once per period; never anyone outside the group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from appliance.credits.errors import BudgetExceeded
from appliance.credits.metering import Metering
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance


@pytest.fixture
def appliance(home_dir: Path, tmp_path: Path) -> Iterator[Appliance]:
    issuer = make_issuer(tmp_path / "vendor")
    app = open_appliance(licensed_settings(home_dir, issuer))
    _, data = issuer.issue_license(customer="ACME", credits_once="10")
    app.services.metering.license.import_license(data)
    yield app
    app.seal()


def _spend(metering: Metering, user_id: int, tokens: int = 1000) -> None:
    """One settled model call of ``user_id`` (1 credit per 1k tokens at the price set)."""
    hold = metering.meter.reserve(
        principal=f"user:{user_id}",
        provider="local",
        model="smol",
        prompt_tokens=tokens,
        max_tokens=0,
    )
    metering.meter.settle(hold.id, tokens, 0)


def _kinds(metering: Metering, user_id: int) -> list[str]:
    return [n["kind"] for n in metering.notifications.list_for(user_id, is_admin=False)]


def _people(appliance: Appliance) -> tuple[Any, Any, Any, Any]:
    users, groups = appliance.services.users, appliance.services.groups
    alice = users.create_user("alice", "a long enough password", "member")
    bob = users.create_user("bob", "a long enough password", "member")
    carol = users.create_user("carol", "a long enough password", "member")
    group = groups.create_group("research")
    groups.add_member(group.id, alice.id)
    groups.add_member(group.id, bob.id)
    return alice, bob, carol, group


def test_every_member_is_told_once_when_the_group_budget_is_reached(
    appliance: Appliance,
) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")  # 1 credit per 1k tokens
    alice, bob, carol, group = _people(appliance)
    metering.budgets.create("group", group.id, "month", "soft", "1.5")
    _spend(metering, alice.id)  # 1 of 1.5: not reached, nobody told
    assert _kinds(metering, alice.id) == _kinds(metering, bob.id) == []
    _spend(metering, alice.id)  # 2 of 1.5: reached
    _spend(metering, bob.id)  # still reached: no second notice this month
    assert _kinds(metering, alice.id) == ["budget_reached"]
    assert _kinds(metering, bob.id) == ["budget_reached"]  # bob is told although alice spent
    (notice,) = metering.notifications.list_for(bob.id, is_admin=False)
    assert f"budget of group {group.name} (1.5 credits)" in notice["message"]
    assert _kinds(metering, carol.id) == []  # not in the group
    admins = metering.notifications.list_for(0, is_admin=True)
    assert [n["kind"] for n in admins].count("budget_reached") == 1
    # Each member's copy is their own: bob reading his leaves alice's unread.
    metering.notifications.mark_read(notice["id"], bob.id, is_admin=False)
    assert metering.notifications.list_for(bob.id, is_admin=False, unread_only=True) == []
    assert len(metering.notifications.list_for(alice.id, is_admin=False, unread_only=True)) == 1


def test_a_hard_group_budget_refusal_tells_the_members(appliance: Appliance) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")
    alice, bob, carol, group = _people(appliance)
    metering.budgets.create("group", group.id, "day", "hard", "1.5")
    _spend(metering, bob.id)
    with pytest.raises(BudgetExceeded, match="daily group budget"):
        _spend(metering, alice.id)  # 1 + 1 would pass 1.5: refused, not yet reached
    refused = ["budget_refused"]
    assert _kinds(metering, alice.id) == _kinds(metering, bob.id) == refused
    _spend(metering, alice.id, 500)  # 1.5 of 1.5: reached, and said so
    both = ["budget_reached", "budget_refused"]
    assert sorted(_kinds(metering, alice.id)) == sorted(_kinds(metering, bob.id)) == both
    assert _kinds(metering, carol.id) == []
    with pytest.raises(BudgetExceeded):
        _spend(metering, bob.id)
    assert sorted(_kinds(metering, bob.id)) == both  # once per period each


def test_a_hard_budget_refusal_before_the_limit_is_not_a_reached_notice(
    appliance: Appliance,
) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")
    alice, _, _, _ = _people(appliance)
    metering.budgets.create("user", alice.id, "day", "hard", "1")
    _spend(metering, alice.id, 500)  # 0.5 of 1
    with pytest.raises(BudgetExceeded):
        _spend(metering, alice.id, 800)  # its worst case would pass the limit: refused
    (refused,) = metering.notifications.list_for(alice.id, is_admin=False)
    assert refused["kind"] == "budget_refused" and "has been reached" not in refused["message"]
    _spend(metering, alice.id, 500)  # 1 of 1: reached now, and said so (not held back)
    reached, _ = metering.notifications.list_for(alice.id, is_admin=False)
    assert reached["kind"] == "budget_reached" and "user alice" in reached["message"]
