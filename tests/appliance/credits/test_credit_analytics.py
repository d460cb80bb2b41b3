"""DuckDB analytics over the encrypted ledger: usage by dimension, the depletion forecast,
recommendations and the monthly CSV statement — held to account: the statement adds up to the
ledger, the forecast counts only the days the appliance existed and leaves its band open with
little history, DuckDB keeps everything in memory, and bad parameters get typed errors."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from sqlalchemy import func, select

from appliance import Appliance
from appliance.audit import ensure_audit_key
from appliance.credits.analytics import UsageAnalytics, t_quantile
from appliance.credits.ledger import ledger_key
from appliance.credits.meter import CreditMeter
from appliance.credits.metering import Metering
from appliance.credits.models import CreditLedgerEntry
from appliance.errors import InvalidRequest, NotFound
from tests.appliance.licensing.license_world import (
    api_client,
    licensed_settings,
    make_issuer,
    open_appliance,
)

CREDIT = 1_000_000
PASSWORD = "a long enough password"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def appliance(home_dir: Path, tmp_path: Path) -> Iterator[Appliance]:
    issuer: Any = make_issuer(tmp_path / "vendor")
    app = open_appliance(licensed_settings(home_dir, issuer))
    _, data = issuer.issue_license(customer="ACME", credits_once="100")
    app.services.metering.license.import_license(data)
    yield app
    app.seal()


def _meter_at(metering: Metering, appliance: Appliance, clock: Clock) -> CreditMeter:
    """A meter on the same ledger whose entries carry ``clock``'s time (history)."""
    return CreditMeter(
        appliance.db,
        ledger_key(ensure_audit_key(appliance.db)),
        metering.prices,
        metering.budgets,
        metering.license,
        clock=clock,
    )


def _call(
    meter: CreditMeter, user: int, agent: str, provider: str, p: int, c: int, max_t: int
) -> None:
    hold = meter.reserve(
        principal=f"user:{user}",
        provider=provider,
        model="m1",
        prompt_tokens=p,
        max_tokens=max_t,
        agent_id=agent,
    )
    assert hold is not None
    meter.settle(hold.id, p, c)


def test_usage_forecast_recommendations_and_statement(appliance: Appliance) -> None:
    services = appliance.services
    metering = services.metering
    alice = services.users.create_user("alice", "a long enough password", "member")
    bob = services.users.create_user("bob", "a long enough password", "member")
    team = services.groups.create_group("team")
    services.groups.add_member(team.id, alice.id)
    services.groups.add_member(team.id, bob.id)
    metering.prices.set("local/*", "1", "1")
    metering.prices.set("@remote/*", "2", "4")
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    clock = Clock(today - timedelta(days=3))
    meter = _meter_at(metering, appliance, clock)
    for day in range(4):  # one credit a day locally by alice, some remote by bob
        clock.now = today - timedelta(days=3 - day)
        _call(meter, alice.id, "writer", "local", 500, 500, 500)
        _call(meter, bob.id, "chat", "@remote", 100, 25, 50)
    for _ in range(5):  # reservations far above what settles
        _call(meter, alice.id, "verbose", "local", 10, 10, 2000)

    analytics = UsageAnalytics(appliance.db, metering.meter)
    by_user = {row["user"]: row for row in analytics.usage("user")}
    assert by_user["alice"]["calls"] == 9
    assert by_user["alice"]["credits"] == pytest.approx(4 + 5 * 0.02)
    assert by_user["bob"]["credits"] == pytest.approx(4 * (0.2 + 0.1))
    by_group = analytics.usage("group")
    assert by_group[0]["group"] == "team" and by_group[0]["calls"] == 13
    by_day = analytics.usage("day")
    assert len(by_day) == 4
    assert {row["model"] for row in analytics.usage("model")} == {"local/m1", "@remote/m1"}
    assert {row["agent"] for row in analytics.usage("agent")} == {"writer", "chat", "verbose"}
    since = analytics.usage("day", since=today - timedelta(hours=1))
    assert len(since) == 1

    # The ledger began three days ago at noon (the first backdated charge): three days of it.
    forecast = analytics.forecast(days=14, now=today)
    spent_per_day = (4 * (1 + 0.3) + 5 * 0.02) / 3
    assert forecast.daily_rate == pytest.approx(spent_per_day * CREDIT)
    assert forecast.days_observed == 4
    left = metering.meter.balance().available
    assert forecast.runs_out_on == today.date() + timedelta(days=int(left / forecast.daily_rate))
    # Two whole days (the first began at noon, today is not over): too few for a band.
    assert forecast.earliest is None and forecast.latest is None

    kinds = {(r["kind"], r["agent"]) for r in analytics.recommendations()}
    assert ("use_local_model", "chat") in kinds
    assert ("lower_max_tokens", "verbose") in kinds
    assert ("lower_max_tokens", "writer") not in kinds
    assert analytics.recommendations(since=today + timedelta(hours=1)) == []

    rows = list(csv.reader(io.StringIO(analytics.statement(f"{today:%Y-%m}"))))
    assert rows[0] == [
        "group",
        "user",
        "model",
        "share",
        "calls",
        "prompt_tokens",
        "completion_tokens",
        "credits",
    ]
    body = {(r[1], r[2]): r for r in rows[1:-1]}
    assert body[("bob", "'@remote/m1")][:4] == ["team", "bob", "'@remote/m1", "1/1"]
    assert rows[-1][0] == "(total)"
    assert analytics.statement("1999-01").splitlines() == [
        ",".join(rows[0]),
        "(total),,,,0,0,0,0.000000",
    ]
    with pytest.raises(InvalidRequest, match="YYYY-MM"):
        analytics.statement("May")


def _system_call(meter: CreditMeter, prompt_tokens: int) -> None:
    """A charge without a user (a system principal), at the local price."""
    hold = meter.reserve(
        principal=None,
        provider="local",
        model="m1",
        prompt_tokens=prompt_tokens,
        max_tokens=10,
        agent_id="sys",
    )
    assert hold is not None
    meter.settle(hold.id, prompt_tokens, 0)


def _settled(appliance: Appliance, start: datetime, end: datetime) -> int:
    with appliance.db.read() as session:
        total = session.scalar(
            select(func.sum(CreditLedgerEntry.amount)).where(
                CreditLedgerEntry.kind == "settle",
                CreditLedgerEntry.created_at >= start,
                CreditLedgerEntry.created_at < end,
            )
        )
    return int(total or 0)


def test_the_statement_adds_up_to_the_ledger(appliance: Appliance) -> None:
    services = appliance.services
    metering = services.metering
    metering.prices.set("local/*", "1", "1")
    alice = services.users.create_user("alice", PASSWORD, "member")
    bob = services.users.create_user("bob", PASSWORD, "member")
    carol = services.users.create_user("carol", PASSWORD, "member")
    team = services.groups.create_group("team")
    ops = services.groups.create_group("ops")
    for group, user in ((team, alice), (ops, alice), (team, bob)):
        services.groups.add_member(group.id, user.id)
    month = datetime(2026, 6, 1, tzinfo=UTC)
    meter = _meter_at(metering, appliance, Clock(month + timedelta(days=3)))
    _call(meter, alice.id, "a", "local", 1001, 0, 10)  # 1.001 credits: an odd micro-credit
    _call(meter, bob.id, "a", "local", 2000, 0, 10)
    _call(meter, carol.id, "a", "local", 3000, 0, 10)
    _system_call(meter, 500)
    services.users.delete_user(carol.id)

    analytics = UsageAnalytics(appliance.db, metering.meter)
    rows = list(csv.reader(io.StringIO(analytics.statement("2026-06"))))
    body = {(r[0], r[1]): r for r in rows[1:-1]}
    assert body[("ops", "alice")][3:] == ["1/2", "1", "1001", "0", "0.500500"]
    assert body[("team", "alice")][3:] == ["1/2", "1", "1001", "0", "0.500500"]
    assert body[("team", "bob")][7] == "2.000000"
    assert body[("(no group)", f"user:{carol.id} (deleted)")][7] == "3.000000"
    assert body[("(no group)", "(system)")][7] == "0.500000"
    total = rows[-1]
    assert total[0] == "(total)" and total[4:7] == ["4", "6501", "0"]
    ledger = _settled(appliance, month, datetime(2026, 7, 1, tzinfo=UTC))
    assert round(float(total[7]) * CREDIT) == ledger == 6_501_000

    by_user = {r["user"]: r["credits"] for r in analytics.usage("user")}
    assert by_user[f"user:{carol.id} (deleted)"] == 3 and by_user["(system)"] == 0.5
    by_group = {r["group"]: r["credits"] for r in analytics.usage("group")}
    assert by_group == {"team": 2.5005, "ops": 0.5005, "(no group)": 3.5}

    only_team = list(csv.reader(io.StringIO(analytics.statement("2026-06", team.id))))
    assert {r[0] for r in only_team[1:-1]} == {"team"}
    assert only_team[-1][7] == "2.500500"
    with pytest.raises(NotFound):
        analytics.statement("2026-06", 999_999)


@pytest.mark.parametrize("month", ["9999-12", "2026-13", "0000-01", "1969-12", "2026-1", "26-01"])
def test_months_out_of_range_are_invalid(appliance: Appliance, month: str) -> None:
    analytics = appliance.services.metering.analytics
    with pytest.raises(InvalidRequest, match="YYYY-MM") as caught:
        analytics.statement(month)
    assert caught.value.http_status == 422


def test_a_young_appliance_is_forecast_from_the_days_it_has(appliance: Appliance) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")
    now = datetime.now(UTC)
    # The ledger's first entry is the license grant made by the fixture a moment ago: one
    # day's worth of history at the least, not fourteen days of zeros.
    _system_call(metering.meter, 3000)
    forecast = metering.analytics.forecast(days=14, now=now)
    assert forecast.daily_rate == pytest.approx(3 * CREDIT)
    assert forecast.days_observed == 1
    assert forecast.earliest is None and forecast.latest is None  # no whole day yet


def test_the_band_uses_students_t_over_whole_days(appliance: Appliance) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "1", "1")
    today = datetime(2026, 6, 20, 6, 0, tzinfo=UTC)
    clock = Clock(today)
    meter = _meter_at(metering, appliance, clock)
    series = [1, 5, 2, 0, 3, 4, 1]  # credits on each of the last seven whole days
    for back, spent in enumerate(reversed(series), start=1):
        clock.now = datetime.combine(
            (today - timedelta(days=back)).date(), datetime.min.time(), UTC
        )
        _system_call(meter, spent * 1000)
    forecast = metering.analytics.forecast(days=8, now=today)
    # The ledger began at midnight seven days ago (the fixture's grant is today, later).
    rate = sum(series) * CREDIT / (7.25)
    assert forecast.daily_rate == pytest.approx(rate)
    margin = t_quantile(6) * statistics.stdev(series) * CREDIT / math.sqrt(7)
    available = metering.meter.balance().available
    assert forecast.runs_out_on == today.date() + timedelta(days=int(available / rate))
    assert forecast.earliest == today.date() + timedelta(days=int(available / (rate + margin)))
    assert forecast.latest == today.date() + timedelta(days=int(available / (rate - margin)))
    assert forecast.earliest < forecast.runs_out_on < forecast.latest
    assert t_quantile(6) == pytest.approx(2.447, abs=0.002)


def test_duckdb_keeps_to_memory(appliance: Appliance) -> None:
    analytics = appliance.services.metering.analytics
    con = analytics._connect(None, None)
    try:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
    finally:
        con.close()


@pytest.fixture
async def admin_client(appliance: Appliance) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(appliance) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "url", "status", "field"),
    [
        ("GET", "/api/v1/credits/statement?month=9999-12", 422, "month"),
        ("GET", "/api/v1/credits/statement?month=2026-06&group_id=99999", 404, "group_id"),
        ("GET", "/api/v1/credits/statement?month=2026-06&group_id=9223372036854775808", 422, None),
        (
            "GET",
            "/api/v1/credits/usage?by=user&since=2026-05-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            422,
            "until",
        ),
        ("GET", "/api/v1/credits/ledger?after=9223372036854775808", 422, None),
        ("DELETE", "/api/v1/credits/budgets/9223372036854775808", 422, None),
        ("PATCH", "/api/v1/credits/budgets/0", 422, None),
    ],
)
async def test_bad_analytics_parameters_are_typed_errors(
    admin_client: httpx.AsyncClient, method: str, url: str, status: int, field: str | None
) -> None:
    answer = await admin_client.request(method, url, json={"limit": 1})
    assert answer.status_code == status, answer.text
    problem = answer.json()
    assert problem["code"] in ("invalid_request", "not_found")
    if field is not None:
        assert problem.get("context", {}).get("field") == field, problem
