"""Prices within the license: a license's minimum per class (local, remote, tool) refuses a
lower price and raises every charge to it, a price stored before the license included."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from appliance import Appliance
from appliance.credits.errors import PriceBelowLicense
from tests.appliance.licensing.license_world import api_client, vendor_tool

FLOORS = {
    "local": {"input_per_1k": "0.05", "output_per_1k": "0.1"},
    "remote": {"input_per_1k": "2", "output_per_1k": "4"},
    "tool": {"input_per_1k": "0", "output_per_1k": "0", "per_second": "0.01"},
}


def _import(appliance: Appliance, issuer: Any, **kw: Any) -> None:
    _, data = issuer.issue_license(customer="ACME", credits_once="100", **kw)
    appliance.services.metering.license.import_license(data)


def test_a_price_below_the_license_minimum_is_refused(appliance: Appliance, issuer: Any) -> None:
    _import(appliance, issuer, min_prices=FLOORS)
    prices = appliance.services.metering.prices
    before = prices.list()
    with pytest.raises(PriceBelowLicense) as refused:
        prices.set("local/*", "0.01", "0.1")
    assert refused.value.http_status == 422
    assert refused.value.context["field"] == "input_per_1k"
    assert "0.05" in refused.value.message
    with pytest.raises(PriceBelowLicense):
        prices.set("@lan/llama", "3", "3.5")  # remote: output under 4
    with pytest.raises(PriceBelowLicense):
        prices.set("tool/python", per_second="0.001")
    assert prices.list() == before  # nothing changed
    assert prices.set("local/*", "0.05", "0.2").input_per_1k == 50_000  # at the minimum: fine


def test_every_charge_is_raised_to_the_license_minimum(appliance: Appliance, issuer: Any) -> None:
    metering = appliance.services.metering
    metering.prices.set("local/*", "0", "0")  # set while no license limited it
    _import(appliance, issuer, min_prices=FLOORS)
    meter = metering.meter
    hold = meter.reserve(
        principal=None, provider="local", model="m", prompt_tokens=1000, max_tokens=1000
    )
    assert hold is not None
    charged = meter.settle(hold.id, 1000, 500)
    assert charged == 50_000 + 50_000  # 1k in at 0.05, 0.5k out at 0.1
    assert meter.charge_tool(None, "python", 2.0, None) == 20_000  # 2 s at 0.01
    listed = {row["name"]: row for row in metering.prices.list()}
    assert listed["local/*"]["input_per_1k"] == 0
    assert listed["local/*"]["minimum"]["input_per_1k"] == 0.05
    assert listed["local/*"]["charged"]["input_per_1k"] == 0.05
    assert listed["*/*"]["charged"]["output_per_1k"] == 4  # the default 2, raised to 4
    assert meter.verify().ok


def test_without_minimums_prices_are_free_to_set(appliance: Appliance, issuer: Any) -> None:
    _import(appliance, issuer)
    prices = appliance.services.metering.prices
    assert prices.set("local/*", "0", "0").input_per_1k == 0
    assert all(row["minimum"] is None for row in prices.list())


@pytest.fixture
async def admin(appliance: Appliance, issuer: Any) -> AsyncIterator[httpx.AsyncClient]:
    _import(appliance, issuer, min_prices=FLOORS)
    async with api_client(appliance) as client:
        yield client


async def test_the_api_answers_422_price_below_license(admin: httpx.AsyncClient) -> None:
    body = {"name": "remote-x/gpt", "input_per_1k": 1, "output_per_1k": 8}
    refused = await admin.put("/api/v1/credits/prices", json=body)
    assert refused.status_code == 422
    assert refused.json()["code"] == "price_below_license"
    assert refused.json()["context"]["field"] == "input_per_1k"
    listed = (await admin.get("/api/v1/credits/prices")).json()
    assert "remote-x/gpt" not in {row["name"] for row in listed}


def test_the_vendor_tool_writes_minimums_the_appliance_reads(
    appliance: Appliance, tmp_path: Path, issuer: Any
) -> None:
    vendor_tool()
    cli = importlib.import_module("enclave_vendor.cli")
    out = tmp_path / "floors.lic"
    written = CliRunner().invoke(
        cli.app,
        [
            "license",
            "--keys",
            str(issuer.directory),
            "--out",
            str(out),
            "--customer",
            "ACME",
            "--min-price",
            "local=0.05,0.1",
            "--min-price",
            "tool=0,0,0.01",
        ],
    )
    assert written.exit_code == 0, written.output
    appliance.services.metering.license.import_license(out.read_bytes())
    floors = appliance.services.metering.license.price_floors()
    assert floors == {"local": (50_000, 100_000, 0), "tool": (0, 0, 10_000)}
