"""The model hub: shared local models behind a fair queue, memory check, idle unload, and a
full queue refused with 429 + Retry-After."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from appliance import Appliance, Role
from appliance.errors import ModelMemoryInsufficient, ModelUnknown
from appliance.home import Home
from appliance.runs.hub import ModelHub
from appliance.web import create_app
from engine.agents import AgentDefinition, parse_definition
from engine.providers import ChatMessage, ChatRequest, collect
from engine.providers.fallback import FallbackChain
from models import load_catalog
from tests.conftest import PASSPHRASE, make_settings

DEFAULT = load_catalog().default


def agent(
    model: str = DEFAULT, provider: str = "local", fallbacks: list[dict[str, str]] | None = None
) -> AgentDefinition:
    return parse_definition(
        {"name": "a", "model": {"provider": provider, "model": model}, "fallbacks": fallbacks or []}
    )


def test_unknown_models_and_unconfigured_endpoints_are_refused(home_dir: Path) -> None:
    hub = ModelHub(make_settings(home_dir), Home(home_dir))
    with pytest.raises(ModelUnknown, match="no-such-model"):
        hub.resolve(agent("no-such-model"), "user:1")
    with pytest.raises(ModelUnknown, match="not configured"):
        hub.resolve(agent("gpt", provider="0" * 32), "user:1")


def test_a_model_that_does_not_fit_in_memory_is_not_loaded(home_dir: Path) -> None:
    hub = ModelHub(make_settings(home_dir), Home(home_dir), memory=lambda: 50 * 2**20)
    with pytest.raises(ModelMemoryInsufficient) as info:
        hub.resolve(agent(), "user:1")
    assert info.value.context["available_mb"] == 50
    assert info.value.context["needed_mb"] > 50
    assert hub.loaded_models() == []


def test_fallbacks_become_one_chain_sharing_the_model(home_dir: Path) -> None:
    hub = ModelHub(make_settings(home_dir), Home(home_dir))
    resolved = hub.resolve(agent(fallbacks=[{"provider": "local", "model": DEFAULT}]), "user:1")
    assert isinstance(resolved.provider, FallbackChain)
    assert resolved.provider_label == "local" and resolved.model_label == DEFAULT
    assert hub.loaded_models() == [DEFAULT]
    hub.terminate()


async def test_idle_models_are_unloaded_and_load_again(home_dir: Path) -> None:
    hub = ModelHub(make_settings(home_dir, model_idle_unload_s=60, model_threads=2), Home(home_dir))
    request = ChatRequest((ChatMessage("user", "Say hi."),), max_tokens=4, temperature=0.0)
    try:
        provider = hub.resolve(agent(), "user:1").provider
        _text, usage, _ = await collect(provider.stream(request))
        assert usage.completion_tokens > 0
        assert (await hub.status())[0]["loaded"] is True
        # Not idle long enough: stays.
        assert await hub.unload_idle() == []
        assert await hub.unload_idle(now=time.monotonic() + 61) == [DEFAULT]
        assert (await hub.status())[0]["loaded"] is False
        # The next request loads it again.
        again = hub.resolve(agent(), "user:2").provider
        _, usage, _ = await collect(again.stream(request))
        assert usage.completion_tokens > 0
    finally:
        await hub.close()


async def test_a_full_queue_answers_429_with_retry_after(home_dir: Path) -> None:
    appliance = Appliance(
        make_settings(
            home_dir, rate_limit_api_per_minute=100000, model_queue_max_waiting=0, model_threads=2
        )
    )
    appliance.initialise(PASSPHRASE)
    services = appliance.services
    user = services.users.create_user("chatter", "hub test password 123", Role.BUILDER)
    token = services.tokens.login(user).access_token
    long = services.agents.create(
        user,
        {
            "name": "long",
            "model": {"provider": "local", "model": DEFAULT},
            "generation": {"max_output_tokens": 400},
        },
    ).id
    runs = appliance.runs
    busy = await runs.start(user, long, "Tell a long story about the sea.")
    follower = busy.events.follow()
    await anext(follower)  # the first token: the model is busy with this run
    await follower.aclose()
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                f"/api/v1/agents/{long}/runs",
                json={"input": "hello"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 429, response.text
        assert response.json()["code"] == "queue_full"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        busy.cancel()
        await runs.close()
        appliance.seal()
