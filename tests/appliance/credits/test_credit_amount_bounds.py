"""Credit amounts that are not finite, or beyond what the ledger can hold, are a 422 naming the
field — for prices, budgets, and the credits a license or voucher grants — never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance import Appliance
from appliance.licensing.document import MAX_CREDITS
from tests.appliance.licensing.license_world import (
    api_client,
    licensed_settings,
    make_issuer,
    open_appliance,
)

# As JSON text: strings, and numbers Python's JSON parser reads as inf / NaN (1e400, Infinity).
BAD = [
    '"inf"',
    '"Infinity"',
    '"-inf"',
    '"NaN"',
    '"1e400"',
    "1e400",
    "Infinity",
    "NaN",
    '"1e30"',
    "1e13",
    '"9223372036855"',
]


@dataclass
class World:
    client: httpx.AsyncClient
    appliance: Appliance
    issuer: Any
    admin: dict[str, str]
    user_id: int

    async def send(self, method: str, url: str, fields: str) -> httpx.Response:
        """A JSON body written by hand (httpx refuses to encode inf and NaN)."""
        headers = {**self.admin, "Content-Type": "application/json"}
        return await self.client.request(method, url, content="{" + fields + "}", headers=headers)


@pytest.fixture
async def world(home_dir: Path, tmp_path: Path) -> AsyncIterator[World]:
    issuer = make_issuer(tmp_path / "vendor")
    appliance = open_appliance(
        licensed_settings(
            home_dir, issuer, rate_limit_api_per_minute=100000, rate_limit_auth_per_minute=100000
        )
    )
    async with api_client(appliance) as client:  # signed in as an administrator
        admin = appliance.services.users.find_user("api-admin")
        assert admin is not None
        yield World(client, appliance, issuer, {}, admin.id)
    appliance.seal()


def _refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "invalid_request"
    assert body["context"]["field"] == field and field in body["detail"]


async def test_prices_refuse_amounts_that_are_not_finite_or_too_large(world: World) -> None:
    for field in ("input_per_1k", "output_per_1k", "per_second"):
        for value in BAD:
            body = f'"name":"local/smol","{field}":{value}'
            answer = await world.send("PUT", "/api/v1/credits/prices", body)
            _refused(answer, field)
    top = {"name": "local/smol", "input_per_1k": str(MAX_CREDITS)}
    accepted = await world.client.put("/api/v1/credits/prices", json=top, headers=world.admin)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["input_per_1k"] == MAX_CREDITS


async def test_budgets_refuse_amounts_that_are_not_finite_or_too_large(world: World) -> None:
    budget = {"scope": "user", "subject_id": world.user_id, "period": "day", "mode": "hard"}
    fields = f'"scope":"user","subject_id":{world.user_id},"period":"day","mode":"hard"'
    for value in BAD:
        answer = await world.send("POST", "/api/v1/credits/budgets", f'{fields},"limit":{value}')
        _refused(answer, "limit")
    created = await world.client.post(
        "/api/v1/credits/budgets", json={**budget, "limit": "10"}, headers=world.admin
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/credits/budgets/{created.json()['id']}"
    for value in BAD:
        answer = await world.send("PATCH", url, f'"limit":{value}')
        _refused(answer, "limit")
    assert world.appliance.services.metering.budgets.all()[0].limit == 10_000_000


async def test_license_and_voucher_credits_must_be_finite_and_bounded(world: World) -> None:
    good, _ = world.issuer.issue_license(customer="ACME")
    for value in ("inf", "NaN", "1e400", "1e30"):
        payload = good.model_dump(mode="json") | {"credits_once": value}
        answer = await world.client.post(
            "/api/v1/license",
            json={"license": world.issuer.sign(payload).decode()},
            headers=world.admin,
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "license_invalid"
        assert "credits_once" in answer.json()["detail"]
    assert world.appliance.services.metering.license.status().license is None
    _, data = world.issuer.issue_license(customer="ACME")
    imported = await world.client.post(
        "/api/v1/license", json={"license": data.decode()}, headers=world.admin
    )
    assert imported.status_code == 200, imported.text
    voucher = {
        "kind": "voucher",
        "voucher_id": "v-1",
        "license_id": imported.json()["imported"],
        "credits": "Infinity",
        "issued_at": good.issued_at.isoformat(),
    }
    redeemed = await world.client.post(
        "/api/v1/credits/vouchers",
        json={"voucher": world.issuer.sign(voucher).decode()},
        headers=world.admin,
    )
    assert redeemed.status_code == 422, redeemed.text
    assert redeemed.json()["code"] == "license_invalid" and "credits" in redeemed.json()["detail"]
    assert world.appliance.services.metering.meter.balance().balance == 0
