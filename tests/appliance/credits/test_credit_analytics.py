"""DuckDB analytics over the encrypted ledger: usage by dimension, the depletion forecast,
recommendations and the monthly CSV statement."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from appliance.audit import ensure_audit_key
from appliance.credits.analytics import UsageAnalytics
from appliance.credits.ledger import ledger_key
from appliance.credits.meter import CreditMeter
from appliance.credits.metering import Metering
from appliance.errors import InvalidRequest
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance

CREDIT = 1_000_000


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
