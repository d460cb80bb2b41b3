"""A real model call through the engine's provider, metered by the credits hook: the ledger
settles exactly the usage the model reported, at the model's price."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from engine import ChatMessage, ChatRequest, LocalProvider, Usage
from engine.hooks import ModelCall
from models import load_catalog
from tests.appliance.licensing.license_world import licensed_settings, make_issuer, open_appliance


@pytest.fixture
def appliance(home_dir: Path, tmp_path: Path) -> Iterator[Appliance]:
    issuer: Any = make_issuer(tmp_path / "vendor")
    app = open_appliance(licensed_settings(home_dir, issuer))
    _, data = issuer.issue_license(customer="ACME", credits_once="50")
    app.services.metering.license.import_license(data)
    yield app
    app.seal()


async def test_real_local_model_call_is_charged_exactly_its_usage(appliance: Appliance) -> None:
    path = load_catalog().default_entry().path()
    assert path is not None and path.is_file(), "the bundled SmolLM2 model must be installed"
    metering = appliance.services.metering
    # Prices that make any rounding visible: 0.123457 / 0.987654 credits per 1k tokens.
    metering.prices.set("local/smollm2", "0.123457", "0.987654")
    price = metering.prices.for_model("local", "smollm2")
    hook = metering.hook()
    provider = LocalProvider(path, context_length=2048, n_threads=2)
    try:
        messages = (ChatMessage("user", "Name three colours, briefly."),)
        request = ChatRequest(messages, max_tokens=24, temperature=0.0)
        prompt_estimate = await provider.count_tokens(messages[0].content)
        call = ModelCall(
            "run-1", 1, "user:1", "agent-7", "local", "smollm2", prompt_estimate, request.max_tokens
        )
        before = metering.meter.balance()
        reservation = await hook.before_model_call(call)
        assert reservation is not None
        assert metering.meter.balance().reserved == price.tokens_cost(prompt_estimate, 24)
        usage = None
        async for event in provider.stream(request):
            if isinstance(event, Usage):
                usage = event
        assert usage is not None and usage.completion_tokens > 0
        await hook.after_model_call(call, usage, reservation, None)
    finally:
        await provider.close()
    expected = price.tokens_cost(usage.prompt_tokens, usage.completion_tokens)
    after = metering.meter.balance()
    assert (after.balance, after.reserved) == (before.balance - expected, 0)
    settles = [e for e in metering.meter.entries() if e["kind"] == "settle"]
    assert sum(round(e["amount"] * 1_000_000) for e in settles) == expected
    assert settles[0]["prompt_tokens"] == usage.prompt_tokens
    assert settles[0]["completion_tokens"] == usage.completion_tokens
    assert settles[0]["agent_id"] == "agent-7"
    assert metering.meter.verify().ok
    by_agent = metering.analytics.usage("agent")
    assert by_agent[0]["agent"] == "agent-7"
    assert by_agent[0]["completion_tokens"] == usage.completion_tokens
