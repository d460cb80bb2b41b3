"""Tiers on the API: after a downgrade, a feature the new license lacks is read-only — what
exists stays listed and readable, every change is refused with 403 ``feature_not_licensed``
(nothing is deleted) — and a license that includes it again restores it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from appliance import Appliance
from appliance.licensing.features import FEATURES, KNOWLEDGE, MCP, REMOTE_PROVIDERS
from appliance.web import create_app

# feature → (collection path, body that creates one item)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    KNOWLEDGE: ("/api/v1/knowledge-bases", {"name": "Handbook"}),
    MCP: (
        "/api/v1/mcp-servers",
        {"name": "tools", "transport": "http", "url": "http://127.0.0.1:9/mcp"},
    ),
    REMOTE_PROVIDERS: (
        "/api/v1/providers?probe=false",
        {
            "name": "lan-llm",
            "kind": "openai_compatible",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
        },
    ),
}


def test_every_feature_has_a_case() -> None:
    assert set(CASES) == set(FEATURES)


@pytest.mark.parametrize("feature", sorted(CASES))
def test_a_downgrade_makes_the_feature_read_only_and_an_upgrade_restores_it(
    appliance: Appliance, issuer: Any, feature: str
) -> None:
    path, body = CASES[feature]
    collection = path.split("?")[0]
    licensing = appliance.services.metering.license
    admin = appliance.services.users.create_user("admin-one", "a long enough password", "admin")
    headers = {"Authorization": f"Bearer {appliance.services.tokens.login(admin).access_token}"}
    everything = tuple(FEATURES)
    without = tuple(f for f in FEATURES if f != feature)

    async def api() -> None:
        transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            licensing.import_license(issuer.issue_license(customer="A", features=everything)[1])
            made = await c.post(path, json=body, headers=headers)
            assert made.status_code == 201, made.text
            item = made.json()["id"]

            _, lower = issuer.issue_license(customer="A", tier="basic", features=without)
            licensing.import_license(lower)  # the downgrade
            again = await c.post(path, json=dict(body, name=f"{body['name']}-2"), headers=headers)
            assert again.status_code == 403, again.text
            assert again.json()["code"] == "feature_not_licensed"
            assert feature in again.json()["detail"] and "basic" in again.json()["detail"]
            removed = await c.delete(f"{collection}/{item}", headers=headers)
            assert removed.status_code == 403
            assert removed.json()["code"] == "feature_not_licensed"
            listed = await c.get(collection, headers=headers)
            assert listed.status_code == 200 and item in listed.text  # still there, readable
            one = await c.get(f"{collection}/{item}", headers=headers)
            assert one.status_code == 200
            anonymous = await c.post(path, json=body)
            assert anonymous.status_code == 401  # authentication still comes first

            licensing.import_license(issuer.issue_license(customer="A", features=everything)[1])
            restored = await c.post(
                path, json=dict(body, name=f"{body['name']}-3"), headers=headers
            )
            assert restored.status_code == 201, restored.text
            gone = await c.delete(f"{collection}/{item}", headers=headers)
            assert gone.status_code == 204

    asyncio.run(api())


def test_an_unlicensed_appliance_has_every_feature(appliance: Appliance) -> None:
    status = appliance.services.metering.license.status()
    assert status.license is None
    assert all(status.has_feature(f) for f in FEATURES)


def test_an_evaluation_license_evaluates_every_feature(appliance: Appliance, issuer: Any) -> None:
    licensing = appliance.services.metering.license
    _, data = issuer.issue_license(customer="Eval", tier="evaluation", evaluation_days=14)
    lic = licensing.import_license(data)
    assert lic.evaluation and lic.features == ()
    assert all(licensing.status().has_feature(f) for f in FEATURES)
    admin = appliance.services.users.create_user("admin-one", "a long enough password", "admin")
    headers = {"Authorization": f"Bearer {appliance.services.tokens.login(admin).access_token}"}
    path, body = CASES[MCP]

    async def api() -> int:
        transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.post(path, json=body, headers=headers)).status_code

    assert asyncio.run(api()) == 201
