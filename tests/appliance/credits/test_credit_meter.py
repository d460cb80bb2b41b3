"""Reserve → settle → release on a real SQLCipher ledger: exact charges, refusals that change
nothing, budgets, notices and expiry of stale reservations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3.dbapi2 as sqlcipher

from appliance import Appliance
from appliance.credits.errors import BudgetExceeded, CreditsExhausted
from appliance.credits.metering import Metering
from appliance.credits.prices import DEFAULT_LOCAL, DEFAULT_REMOTE
from engine.hooks import HookDenied, ModelCall
from engine.providers.base import Usage
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance

CREDIT = 1_000_000


@pytest.fixture
def issuer(tmp_path: Path) -> Any:
    return make_issuer(tmp_path / "vendor")


@pytest.fixture
def appliance(home_dir: Path, issuer: Any) -> Iterator[Appliance]:
    app = open_appliance(licensed_settings(home_dir, issuer, reservation_expiry_seconds=1))
    _, data = issuer.issue_license(customer="ACME", credits_once="10")
    app.services.metering.license.import_license(data)
    yield app
    app.seal()


@pytest.fixture
def metering(appliance: Appliance) -> Metering:
    return appliance.services.metering


def _reserve(metering: Metering, principal: str = "user:1", **kw: Any) -> Any:
    args: dict[str, Any] = {
        "principal": principal,
        "provider": "local",
        "model": "smol",
        "prompt_tokens": 1000,
        "max_tokens": 1000,
    }
    args.update(kw)
    return metering.meter.reserve(**args)


def test_unlicensed_appliance_is_unmetered(home_dir: Path, issuer: Any) -> None:
    app = open_appliance(licensed_settings(home_dir, issuer))
    try:
        assert _reserve(app.services.metering) is None
        assert app.services.metering.meter.balance().entries == 0
    finally:
        app.seal()


def test_reserve_settle_charges_exactly_and_releases_the_rest(metering: Metering) -> None:
    meter = metering.meter
    hold = _reserve(metering)
    worst = DEFAULT_LOCAL.tokens_cost(1000, 1000)
    assert hold.amount == worst
    assert meter.balance().reserved == worst
    charged = meter.settle(hold.id, 950, 123)
    assert charged == DEFAULT_LOCAL.tokens_cost(950, 123)
    after = meter.balance()
    assert (after.balance, after.reserved) == (10 * CREDIT - charged, 0)
    entries = meter.entries()
    # One settle entry charges the usage and gives back the rest of the hold (0012).
    assert [e["kind"] for e in entries] == ["grant", "reserve", "settle"]
    assert entries[-1]["released"] == (worst - charged) / CREDIT
    assert meter.settle(hold.id, 950, 123) == 0  # settling twice changes nothing
    assert meter.balance().balance == after.balance
    assert meter.verify().ok


def test_usage_beyond_the_hold_settles_it_in_full_and_charges_the_rest_directly(
    metering: Metering,
) -> None:
    meter = metering.meter
    hold = _reserve(metering, prompt_tokens=100, max_tokens=100)
    charged = meter.settle(hold.id, 900, 400)  # the prompt was longer than estimated
    assert charged == DEFAULT_LOCAL.tokens_cost(900, 400) > hold.amount
    after = meter.balance()
    assert (after.balance, after.reserved) == (10 * CREDIT - charged, 0)
    entries = meter.entries()
    assert [(e["kind"], e["released"]) for e in entries] == [
        ("grant", None),
        ("reserve", None),
        ("settle", 0),  # the whole hold was used
        ("settle", None),  # the excess, charged directly
    ]
    assert round(entries[2]["amount"] * CREDIT) == hold.amount
    assert entries[3]["details"] == {"reservation": hold.id, "uncovered": 0}
    assert meter.verify().ok


def test_release_gives_everything_back(metering: Metering) -> None:
    hold = _reserve(metering)
    metering.meter.release(hold.id)
    metering.meter.release(hold.id)
    balance = metering.meter.balance()
    assert (balance.balance, balance.reserved) == (10 * CREDIT, 0)


def test_a_call_that_cannot_be_covered_is_refused_and_nothing_changes(
    metering: Metering,
) -> None:
    # Remote prices: 1 + 2 credits per 1k tokens; 2k + 3k tokens need 8 credits.
    first = _reserve(metering, provider="remote", model="big", prompt_tokens=2000, max_tokens=3000)
    assert first.amount == DEFAULT_REMOTE.tokens_cost(2000, 3000) == 8 * CREDIT
    before = metering.meter.balance()
    with pytest.raises(CreditsExhausted, match="2 are available"):
        _reserve(metering, provider="remote", model="big", prompt_tokens=2000, max_tokens=3000)
    assert metering.meter.balance() == before
    notices = [n["kind"] for n in metering.notifications.list_for(1, is_admin=True)]
    assert "credits_exhausted" in notices


def test_hook_turns_refusals_into_402_denials(metering: Metering) -> None:
    hook = metering.hook()
    call = ModelCall("run", 1, "user:1", "agent-1", "remote", "big", 4000, 4000)
    with pytest.raises(HookDenied) as denied:
        asyncio.run(hook.before_model_call(call))
    assert (denied.value.reason_code, denied.value.http_status) == ("credits_exhausted", 402)
    assert "voucher" in str(denied.value)
    small = ModelCall("run", 2, "user:1", "agent-1", "local", "smol", 100, 100)
    reservation = asyncio.run(hook.before_model_call(small))
    assert reservation is not None
    asyncio.run(hook.after_model_call(small, Usage(90, 10), reservation, None))
    charge = DEFAULT_LOCAL.tokens_cost(90, 10)
    assert metering.meter.balance().balance == 10 * CREDIT - charge


def test_hard_budget_blocks_and_soft_budget_notifies(
    appliance: Appliance, metering: Metering
) -> None:
    users = appliance.services.users
    alice = users.create_user("alice", "a long enough password", "member")
    group = appliance.services.groups.create_group("research")
    appliance.services.groups.add_member(group.id, alice.id)
    metering.budgets.create("user", alice.id, "day", "hard", "0.05")
    metering.budgets.create("group", group.id, "month", "soft", "0.01")
    principal = f"user:{alice.id}"
    hold = _reserve(metering, principal, prompt_tokens=1000, max_tokens=1000)  # 0.03 credits
    with pytest.raises(BudgetExceeded, match="daily user budget"):
        _reserve(metering, principal, prompt_tokens=1000, max_tokens=1000)
    metering.meter.settle(hold.id, 500, 100)  # 0.007 credits: the reservation is given back
    second = _reserve(metering, principal, prompt_tokens=1000, max_tokens=1000)
    metering.meter.settle(second.id, 1000, 500)  # 0.02: group's soft 0.01 reached
    admin_notices = metering.notifications.list_for(0, is_admin=True)
    assert [n["kind"] for n in admin_notices].count("budget_reached") == 1
    assert [n["kind"] for n in admin_notices].count("budget_refused") == 1
    own = metering.notifications.list_for(alice.id, is_admin=False)
    # Her user budget's refusal, and her group's budget reached (members are told too).
    assert sorted(n["kind"] for n in own) == ["budget_reached", "budget_refused"]
    for notice in own:
        metering.notifications.mark_read(notice["id"], alice.id, is_admin=False)
    assert metering.notifications.list_for(alice.id, is_admin=False, unread_only=True) == []
    # Other users are not limited by alice's budgets.
    assert _reserve(metering, "user:999", prompt_tokens=1000, max_tokens=1000) is not None


def test_low_balance_notices_at_20_and_5_percent(metering: Metering) -> None:
    meter = metering.meter
    metering.prices.set("local/*", "1", "1")  # 1 credit per 1k tokens
    for tokens in (8100, 1400):  # 10 → 1.9 (19 %) → 0.5 (5 %)
        hold = _reserve(metering, prompt_tokens=tokens, max_tokens=0)
        meter.settle(hold.id, tokens, 0)
    notices = [n["message"] for n in metering.notifications.list_for(0, is_admin=True)]
    assert sum("20 %" in m for m in notices) == 1
    assert sum("5 %" in m for m in notices) == 1


def test_stale_reservations_expire_at_start_and_a_late_settle_still_charges(
    metering: Metering,
) -> None:
    meter = metering.meter
    hold = _reserve(metering)
    time.sleep(1.1)
    assert meter.expire_stale() == 1
    assert meter.balance().reserved == 0
    assert meter.expire_stale() == 0
    charged = meter.settle(hold.id, 10, 10)
    assert charged == DEFAULT_LOCAL.tokens_cost(10, 10)
    assert meter.balance().balance == 10 * CREDIT - charged
    assert meter.verify().ok


def test_tool_seconds_are_charged(metering: Metering) -> None:
    metering.prices.set("tool/*", per_second="0.5")
    assert metering.meter.charge_tool("user:1", "python", 3.0, "agent-1") == 1_500_000
    assert metering.meter.balance().balance == 10 * CREDIT - 1_500_000


def test_prices_apply_most_specific_first(metering: Metering) -> None:
    metering.prices.set("remote/gpt", "0.5", "1")
    metering.prices.set("remote/*", "2", "4")
    assert metering.prices.for_model("remote", "gpt").input_per_1k == 500_000
    assert metering.prices.for_model("remote", "other").output_per_1k == 4_000_000
    assert metering.prices.for_model("local", "x") == DEFAULT_LOCAL
    names = {p["name"] for p in metering.prices.list()}
    assert {"remote/gpt", "remote/*", "local/*", "tool/*"} <= names


def test_reserve_and_settle_statements_stay_compiled(
    appliance: Appliance, metering: Metering
) -> None:
    """The meter's statements are compiled once, not in every transaction. SQLite asks a
    connection's authorizer while it compiles a statement (never when it runs one); on the
    writer pool's connection, or after an executed COMMIT, the driver compiled each of them
    again on every call."""
    compiled: list[tuple[int, str | None]] = []

    def authorizer(action: int, arg1: str | None, *_: Any) -> int:
        if action != sqlcipher.SQLITE_TRANSACTION:  # commit() compiles its COMMIT every time
            compiled.append((action, arg1))
        return sqlcipher.SQLITE_OK

    with appliance.db.write_dbapi() as cursor:
        cursor.connection.set_authorizer(authorizer)  # also expires what was compiled
    try:
        for _ in range(2):  # the first pair compiles each statement once more
            metering.meter.settle(_reserve(metering, max_tokens=10).id, 5, 5)
        compiled.clear()
        for _ in range(10):
            metering.meter.settle(_reserve(metering, max_tokens=10).id, 5, 5)
        assert compiled == []
    finally:
        with appliance.db.write_dbapi() as cursor:
            cursor.connection.set_authorizer(None)
