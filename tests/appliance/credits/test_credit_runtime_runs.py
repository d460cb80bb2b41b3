"""Credits on the real run path (POST /api/v1/agents/{id}/runs, as the web UI and API use it):
a run is charged exactly the usage it reported, a run the balance cannot cover answers 402,
and a fallback chain reserves at its dearest model and is charged at the model that answered —
with the bundled SmolLM2 in process and a real ``llama_cpp.server`` as the remote."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from appliance import Appliance, Role
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.licensing.features import FEATURES
from appliance.providers.service import EndpointSpec
from appliance.web import create_app
from models import load_catalog
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance
from tests.appliance.test_runs_api import parse_sse
from tests.engine.model_servers import LlamaServer, free_port

LOCAL = load_catalog().default
ALL_FEATURES = tuple(FEATURES)
PW = "runtime credits password 1"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Site:
    appliance: Appliance
    client: httpx.AsyncClient
    headers: dict[str, str]
    builder: Any
    issuer: Any

    @property
    def metering(self) -> Any:
        return self.appliance.services.metering

    def agent(
        self, model: dict[str, str], *fallbacks: dict[str, str], tools: tuple[str, ...] = ()
    ) -> str:
        definition = {
            "tools": [{"name": name} for name in tools],
            "name": f"agent {len(self.appliance.services.agents.list_agents(self.builder))}",
            "instructions": "You are a helpful assistant. Answer briefly.",
            "model": model,
            "fallbacks": list(fallbacks),
            "generation": {"temperature": 0.0, "max_output_tokens": 12},
        }
        return str(self.appliance.services.agents.create(self.builder, definition).id)

    def endpoint(self, name: str, base_url: str) -> str:
        spec = EndpointSpec(
            name, "openai_compatible", base_url, "gpt", {"max_retries": 0, "connect_timeout": 1}
        )
        return self.appliance.services.providers.create(spec, None).id

    async def run(self, agent: str) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/agents/{agent}/runs", json={"input": "Say hello."}, headers=self.headers
        )


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama_cpp.server (the bundled model) for the module: the remote provider."""
    server = LlamaServer(tmp_path_factory.mktemp("llama_server"))
    server.start()
    yield server
    server.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """One licensed appliance for the module, so the local model loads once."""
    root = tmp_path_factory.mktemp("credit_runs")
    issuer: Any = make_issuer(root / "vendor")
    settings = licensed_settings(
        root / "home", issuer, rate_limit_api_per_minute=100000, model_threads=2
    )
    appliance = open_appliance(settings)
    _, data = issuer.issue_license(customer="ACME", credits_once="100", features=ALL_FEATURES)
    appliance.services.metering.license.import_license(data)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    builder = users.create_user("builder", PW, Role.BUILDER)
    token = appliance.services.tokens.login(builder).access_token
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", timeout=120
    ) as client:
        yield Site(appliance, client, {"Authorization": f"Bearer {token}"}, builder, issuer)
    await appliance.runs.close()
    appliance.seal()


def micro(entry: dict[str, Any], field: str = "amount") -> int:
    return round(entry[field] * 1_000_000)


async def charged_run(site: Site, agent: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """Run ``agent`` to the end: its events and the ledger entries it added."""
    start = site.metering.meter.balance().entries
    response = await site.run(agent)
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[-1]["event"] == "done", events
    assert site.metering.meter.balance().reserved == 0
    return events, site.metering.meter.entries(after=start)


async def test_a_run_is_charged_exactly_the_usage_it_reported(site: Site) -> None:
    # Prices that make any rounding visible.
    site.metering.prices.set(f"local/{LOCAL}", "0.123457", "0.987654")
    price = site.metering.prices.for_model("local", LOCAL)
    before = site.metering.meter.balance()
    events, entries = await charged_run(site, site.agent({"provider": "local", "model": LOCAL}))

    usages = [e["data"] for e in events if e["event"] == "usage"]
    assert usages and all(u["completion_tokens"] > 0 for u in usages)
    settles = [e for e in entries if e["kind"] == "settle"]
    # One settle per call carries its tokens (a part beyond the hold, if any, follows it).
    assert [
        (s["prompt_tokens"], s["completion_tokens"]) for s in settles if s["prompt_tokens"]
    ] == [(u["prompt_tokens"], u["completion_tokens"]) for u in usages]
    expected = sum(price.tokens_cost(u["prompt_tokens"], u["completion_tokens"]) for u in usages)
    assert sum(micro(s) for s in settles) == expected
    after = site.metering.meter.balance()
    assert (after.balance, after.reserved) == (before.balance - expected, 0)
    assert site.metering.meter.verify().ok


async def test_a_run_the_balance_cannot_cover_answers_402(site: Site) -> None:
    agent = site.agent({"provider": "local", "model": LOCAL})
    meter = site.metering.meter
    spare = meter.balance().available - 1
    meter.adjust(-spare, "leave one micro-credit", "admin")
    entries = meter.balance().entries
    try:
        response = await site.run(agent)
    finally:
        meter.adjust(spare, "restore", "admin")
    assert response.status_code == 402, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "credits_exhausted" and "credits" in body["detail"]
    # Nothing was reserved or charged: the only entry since is the restoring adjustment.
    assert [e["kind"] for e in meter.entries(after=entries)] == ["adjustment"]


async def test_a_fallback_to_a_dearer_remote_is_reserved_and_charged_at_its_price(
    site: Site, llama_server: LlamaServer
) -> None:
    dead = site.endpoint("cheap-but-down", f"http://127.0.0.1:{free_port()}/v1")
    remote = site.endpoint("dear-remote", llama_server.base_url)
    prices = site.metering.prices
    prices.set(f"{dead}/*", "0.001", "0.001")
    prices.set(f"{remote}/*", "10", "10")
    dear = prices.for_model(remote, "gpt")
    agent = site.agent({"provider": dead, "model": "gpt"}, {"provider": remote, "model": "gpt"})
    events, entries = await charged_run(site, agent)

    assert [e["data"]["code"] for e in events if e["event"] == "fallback"] == [
        "provider_unavailable"
    ]
    (usage,) = [e["data"] for e in events if e["event"] == "usage"]
    assert (usage["provider"], usage["model"]) == (remote, "gpt")
    (reserve,) = [e for e in entries if e["kind"] == "reserve"]
    (settle,) = [e for e in entries if e["kind"] == "settle"]
    cost = dear.tokens_cost(usage["prompt_tokens"], usage["completion_tokens"])
    # Charged at the answering remote's price, recorded as it, and covered by the hold.
    assert (settle["provider"], settle["model"], micro(settle)) == (remote, "gpt", cost)
    assert settle["details"] is None and micro(reserve) >= cost
    assert micro(reserve) == micro(settle) + micro(settle, "released")
    by_model = {row["model"]: row for row in site.metering.analytics.usage("model")}
    assert f"{remote}/gpt" in by_model and f"{dead}/gpt" not in by_model


async def test_a_fallback_to_the_local_model_is_charged_at_the_local_price(site: Site) -> None:
    dead = site.endpoint("dear-but-down", f"http://127.0.0.1:{free_port()}/v1")
    prices = site.metering.prices
    prices.set(f"{dead}/*", "10", "10")
    local = prices.for_model("local", LOCAL)
    agent = site.agent({"provider": dead, "model": "gpt"}, {"provider": "local", "model": LOCAL})
    events, entries = await charged_run(site, agent)

    (usage,) = [e["data"] for e in events if e["event"] == "usage"]
    assert (usage["provider"], usage["model"]) == ("local", LOCAL)
    (reserve,) = [e for e in entries if e["kind"] == "reserve"]
    (settle,) = [e for e in entries if e["kind"] == "settle"]
    cost = local.tokens_cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert (settle["provider"], settle["model"], micro(settle)) == ("local", LOCAL, cost)
    # The hold was the dear primary's worst case (10 credits/1k: 10,000 micro-credits a
    # token, prompt and 12 output tokens); all of it but the local charge came back.
    assert micro(reserve) % 10_000 == 0 and micro(reserve) > 12 * 10_000
    assert micro(reserve) == micro(settle) + micro(settle, "released")


async def test_after_a_downgrade_runs_use_only_what_the_tier_includes(site: Site) -> None:
    """A license without ``remote_providers`` and ``mcp``: an agent on a remote model is
    refused with 403, a chain keeps its local models, an agent with MCP tools is refused."""
    down = site.endpoint("remote-after-downgrade", f"http://127.0.0.1:{free_port()}/v1")
    licensing = site.metering.license
    _, smaller = site.issuer.issue_license(customer="ACME", features=("knowledge",))
    licensing.import_license(smaller)
    try:
        remote_only = site.agent({"provider": down, "model": "gpt"})
        entries = site.metering.meter.balance().entries
        refused = await site.run(remote_only)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "feature_not_licensed"
        assert "remote_providers" in refused.json()["detail"]

        mcp_agent = site.agent({"provider": "local", "model": LOCAL}, tools=("files__read",))
        refused = await site.run(mcp_agent)
        assert refused.status_code == 403, refused.text
        assert "MCP tools (files__read)" in refused.json()["detail"]
        assert site.metering.meter.balance().entries == entries  # nothing reserved

        chain = site.agent(
            {"provider": down, "model": "gpt"}, {"provider": "local", "model": LOCAL}
        )
        events, charged = await charged_run(site, chain)
        # The remote primary is left out (no fallback from it): the local model answers.
        assert [e for e in events if e["event"] == "fallback"] == []
        (usage,) = [e["data"] for e in events if e["event"] == "usage"]
        assert usage["provider"] == "local"
        assert {e["provider"] for e in charged if e["kind"] == "settle"} == {"local"}
    finally:
        _, full = site.issuer.issue_license(customer="ACME", features=ALL_FEATURES)
        licensing.import_license(full)
