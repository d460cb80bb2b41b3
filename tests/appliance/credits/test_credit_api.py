"""The REST API of licensing and credits, through the real app: who sees what, audited changes,
typed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance import Appliance
from appliance.credits.errors import BudgetExceeded
from appliance.identity.models import Role
from appliance.web import create_app
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance


@dataclass
class World:
    client: httpx.AsyncClient
    appliance: Appliance
    issuer: Any
    headers: dict[Role, dict[str, str]]
    ids: dict[Role, int]


@pytest.fixture
async def world(home_dir: Path, tmp_path: Path) -> AsyncIterator[World]:
    issuer = make_issuer(tmp_path / "vendor")
    appliance = open_appliance(
        licensed_settings(
            home_dir, issuer, rate_limit_api_per_minute=100000, rate_limit_auth_per_minute=100000
        )
    )
    services = appliance.services
    headers, ids = {}, {}
    for role in Role:
        user = services.users.create_user(f"{role.value}-user", "api password for tests", role)
        token = services.tokens.login(user).access_token
        headers[role], ids[role] = {"Authorization": f"Bearer {token}"}, user.id
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield World(client, appliance, issuer, headers, ids)
    appliance.seal()


async def _import(world: World, **kw: Any) -> Any:
    lic, data = world.issuer.issue_license(customer="ACME", **kw)
    answer = await world.client.post(
        "/api/v1/license", json={"license": data.decode()}, headers=world.headers[Role.ADMIN]
    )
    assert answer.status_code == 200, answer.text
    return lic


async def test_license_import_and_view(world: World) -> None:
    bad = await world.client.post(
        "/api/v1/license", json={"license": "{}\n"}, headers=world.headers[Role.ADMIN]
    )
    assert bad.status_code == 422 and bad.json()["code"] == "license_invalid"
    lic = await _import(world, seats=10, credits_once="20")
    shown = (await world.client.get("/api/v1/license", headers=world.headers[Role.ADMIN])).json()
    assert shown["license"]["license_id"] == lic.license_id
    assert shown["seats_used"] == 4 and shown["state"] == "valid"
    status = await world.client.get("/api/v1/license/status", headers=world.headers[Role.MEMBER])
    assert status.json()["state"] == "valid" and "license" not in status.json()
    assert "seats_message" not in status.json()  # it names the license: for admins only
    actions = [e["action"] for e in world.appliance.services.audit.query(action="license.import")]
    assert actions == ["license.import"]


async def test_balance_vouchers_and_ledger(world: World) -> None:
    lic = await _import(world, credits_once="20")
    _, voucher = world.issuer.issue_voucher(lic.license_id, "5")
    body = {"voucher": voucher.decode()}
    redeemed = await world.client.post(
        "/api/v1/credits/vouchers", json=body, headers=world.headers[Role.ADMIN]
    )
    assert redeemed.status_code == 200 and redeemed.json()["available"] == 25.0
    replay = await world.client.post(
        "/api/v1/credits/vouchers", json=body, headers=world.headers[Role.ADMIN]
    )
    assert replay.status_code == 409 and replay.json()["code"] == "voucher_already_redeemed"
    member = await world.client.get("/api/v1/credits/balance", headers=world.headers[Role.MEMBER])
    assert member.status_code == 200
    assert member.json()["available"] == 25.0 and member.json()["you"]["spent_today"] == 0
    ledger = await world.client.get("/api/v1/credits/ledger", headers=world.headers[Role.AUDITOR])
    assert [e["kind"] for e in ledger.json()] == ["grant", "voucher"]
    verified = await world.client.get("/api/v1/credits/verify", headers=world.headers[Role.AUDITOR])
    assert verified.json() == {"ok": True, "count": 2, "first_bad": None, "reason": None}
    audit = world.appliance.services.audit.query(action="credits.voucher_redeem")
    assert len(audit) == 1 and audit[0]["outcome"] == "success"


async def test_budgets_prices_and_notifications(world: World) -> None:
    await _import(world, credits_once="1")
    admin = world.headers[Role.ADMIN]
    member_id = world.ids[Role.MEMBER]
    created = await world.client.post(
        "/api/v1/credits/budgets",
        json={
            "scope": "user",
            "subject_id": member_id,
            "period": "day",
            "mode": "hard",
            "limit": 0.001,
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    budget_id = created.json()["id"]
    duplicate = await world.client.post(
        "/api/v1/credits/budgets",
        json={
            "scope": "user",
            "subject_id": member_id,
            "period": "day",
            "mode": "hard",
            "limit": 2,
        },
        headers=admin,
    )
    assert duplicate.status_code == 409
    changed = await world.client.patch(
        f"/api/v1/credits/budgets/{budget_id}", json={"limit": "0.002"}, headers=admin
    )
    assert changed.json()["limit"] == 0.002
    price = await world.client.put(
        "/api/v1/credits/prices",
        json={"name": "local/*", "input_per_1k": 1, "output_per_1k": 1},
        headers=admin,
    )
    assert price.status_code == 200
    bad_price = await world.client.put(
        "/api/v1/credits/prices", json={"name": "no slash", "input_per_1k": -1}, headers=admin
    )
    assert bad_price.status_code == 422
    meter = world.appliance.services.metering.meter
    with pytest.raises(BudgetExceeded, match="daily user budget"):
        meter.reserve(
            principal=f"user:{member_id}",
            provider="local",
            model="m",
            prompt_tokens=2,
            max_tokens=1,
        )
    notices = await world.client.get("/api/v1/notifications", headers=world.headers[Role.MEMBER])
    assert [n["kind"] for n in notices.json()] == ["budget_refused"]
    nid = notices.json()[0]["id"]
    other = await world.client.post(
        f"/api/v1/notifications/{nid}/read", headers=world.headers[Role.BUILDER]
    )
    assert other.status_code == 404
    read = await world.client.post(
        f"/api/v1/notifications/{nid}/read", headers=world.headers[Role.MEMBER]
    )
    assert read.status_code == 204
    deleted = await world.client.delete(f"/api/v1/credits/budgets/{budget_id}", headers=admin)
    assert deleted.status_code == 204
    actions = {e["action"] for e in world.appliance.services.audit.query(limit=1000)}
    assert {
        "credits.budget_create",
        "credits.budget_change",
        "credits.budget_delete",
        "credits.price_set",
    } <= actions


async def test_analytics_endpoints(world: World) -> None:
    await _import(world, credits_once="5")
    meter = world.appliance.services.metering.meter
    hold = meter.reserve(
        principal=f"user:{world.ids[Role.MEMBER]}",
        provider="local",
        model="m",
        prompt_tokens=100,
        max_tokens=100,
        agent_id="a1",
    )
    meter.settle(hold.id, 100, 40)
    reader = world.headers[Role.AUDITOR]
    usage = await world.client.get("/api/v1/credits/usage?by=user", headers=reader)
    assert usage.json()[0]["user"] == "member-user" and usage.json()[0]["calls"] == 1
    forecast = await world.client.get("/api/v1/credits/forecast?days=7", headers=reader)
    # The ledger began today: one day observed, whatever the window asked for.
    assert forecast.json()["days_observed"] == 1 and forecast.json()["runs_out_on"]
    recs = await world.client.get("/api/v1/credits/recommendations", headers=reader)
    assert recs.status_code == 200
    month = datetime.now(UTC)
    statement = await world.client.get(
        f"/api/v1/credits/statement?month={month:%Y-%m}", headers=reader
    )
    assert statement.status_code == 200
    assert statement.headers["content-type"].startswith("text/csv")
    assert statement.text.splitlines()[0].startswith("group,user,model")
