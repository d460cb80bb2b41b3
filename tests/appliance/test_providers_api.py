"""/api/v1/providers over the real app and SQLCipher store, probing a real llama_cpp.server.

The API key must never come back: not in any answer, not in the audit log, not in logs, not in
the database in clear; it must still decrypt for the engine, also after a rekey.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from appliance import Appliance
from appliance.errors import ProviderSecretUnreadable
from appliance.identity.models import Role
from appliance.keys.secret import DataKey
from appliance.providers import ProviderEndpoint, ProviderService
from appliance.web import create_app
from engine.providers import ChatMessage, ChatRequest
from tests.conftest import PASSPHRASE, make_settings
from tests.engine.model_servers import LlamaServer, free_port

SECRET = "sk-provider-secret-0123456789"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = LlamaServer(tmp_path_factory.mktemp("llama_server"))
    server.start()
    yield server
    server.kill()


@dataclass
class World:
    client: httpx.AsyncClient
    appliance: Appliance
    admin: dict[str, str]
    member: dict[str, str]

    async def create(self, status: int = 201, probe: bool = False, **fields: Any) -> Any:
        body = {
            "name": "corp-llm",
            "kind": "openai_compatible",
            "base_url": "https://llm.example.org/v1",
            "model": "gpt-corp",
            "api_key": SECRET,
            **fields,
        }
        answer = await self.client.post(
            "/api/v1/providers",
            params={"probe": str(probe).lower()},
            json=body,
            headers=self.admin,
        )
        assert answer.status_code == status, answer.text
        return answer.json()


@pytest.fixture
async def world(home_dir: Any) -> AsyncIterator[World]:
    appliance = Appliance(make_settings(home_dir))
    appliance.initialise(PASSPHRASE)
    users = appliance.services.users
    admin = users.create_user("admin-user", "provider test password", Role.ADMIN)
    member = users.create_user("member-user", "provider test password", Role.MEMBER)

    def bearer(user: Any) -> dict[str, str]:
        token = appliance.services.tokens.login(user).access_token
        return {"Authorization": f"Bearer {token}"}

    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield World(client, appliance, bearer(admin), bearer(member))
    appliance.seal()


def sealed_rows(appliance: Appliance) -> list[ProviderEndpoint]:
    with appliance.services.db.read() as session:
        return list(session.scalars(select(ProviderEndpoint)))


async def test_create_stores_the_key_encrypted_and_never_returns_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        created = await world.create(options={"read_timeout": 20, "max_retries": 1})
        listed = (await world.client.get("/api/v1/providers", headers=world.admin)).json()
        one = await world.client.get(f"/api/v1/providers/{created['id']}", headers=world.admin)
    assert created["has_api_key"] is True and "api_key" not in created
    assert created["options"] == {"max_retries": 1, "read_timeout": 20.0}
    assert created["circuit"] == "closed" and created["probe"] is None
    for answer in (created, listed, one.json()):
        assert SECRET not in json.dumps(answer)
    assert SECRET not in caplog.text
    rows = sealed_rows(world.appliance)
    assert len(rows) == 1 and rows[0].api_key_sealed is not None
    assert SECRET.encode() not in rows[0].api_key_sealed
    audit = world.appliance.services.audit.query(None, None, None, "provider.create", 10, 0)
    assert len(audit) == 1 and SECRET not in json.dumps(audit, default=str)
    # The engine gets the key back, decrypted.
    kind, config = world.appliance.services.providers.engine_config(created["id"])
    assert kind == "openai_compatible" and config.api_key == SECRET
    assert config.read_timeout == 20 and config.max_retries == 1
    assert SECRET not in repr(config)


async def test_members_cannot_see_or_change_providers(world: World) -> None:
    created = await world.create()
    answer = await world.client.get("/api/v1/providers", headers=world.member)
    assert answer.status_code == 403
    answer = await world.client.delete(f"/api/v1/providers/{created['id']}", headers=world.member)
    assert answer.status_code == 403
    assert len(sealed_rows(world.appliance)) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"base_url": "ftp://files.example.org"}, "provider_endpoint_invalid"),
        ({"options": {"ca_bundle": "/nonexistent/ca.pem"}}, "provider_endpoint_invalid"),
        ({"options": {"read_timeout": -1}}, "invalid_request"),
        ({"options": {"proxy": "x"}}, "invalid_request"),
        ({"kind": "gemini"}, "invalid_request"),
    ],
)
async def test_invalid_settings_are_refused_and_nothing_is_saved(
    world: World, fields: dict[str, Any], code: str
) -> None:
    problem = await world.create(status=422, **fields)
    assert problem["code"] == code
    assert sealed_rows(world.appliance) == []
    assert SECRET not in json.dumps(problem)


async def test_duplicate_name_is_a_conflict(world: World) -> None:
    await world.create()
    problem = await world.create(status=409, base_url="https://other.example.org/v1")
    assert problem["code"] == "conflict"
    assert len(sealed_rows(world.appliance)) == 1


async def test_update_keeps_replaces_or_clears_the_key(world: World) -> None:
    created = await world.create()
    url = f"/api/v1/providers/{created['id']}"
    providers = world.appliance.services.providers

    answer = await world.client.patch(url, json={"model": "gpt-corp-2"}, headers=world.admin)
    assert answer.status_code == 200 and answer.json()["model"] == "gpt-corp-2"
    assert providers.engine_config(created["id"])[1].api_key == SECRET

    answer = await world.client.patch(url, json={"api_key": "sk-new-key"}, headers=world.admin)
    assert "sk-new-key" not in answer.text and answer.json()["has_api_key"] is True
    assert providers.engine_config(created["id"])[1].api_key == "sk-new-key"

    answer = await world.client.patch(url, json={"clear_api_key": True}, headers=world.admin)
    assert answer.json()["has_api_key"] is False
    assert providers.engine_config(created["id"])[1].api_key is None

    # A bad change leaves the endpoint as it was.
    answer = await world.client.patch(url, json={"base_url": "gopher://x.example.org"}, headers=world.admin)  # fmt: skip
    assert answer.status_code == 422
    assert providers.get(created["id"]).base_url == "https://llm.example.org/v1"


async def test_delete_removes_the_endpoint(world: World) -> None:
    created = await world.create()
    url = f"/api/v1/providers/{created['id']}"
    assert (await world.client.delete(url, headers=world.admin)).status_code == 204
    answer = await world.client.get(url, headers=world.admin)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert sealed_rows(world.appliance) == []


async def test_create_probes_a_real_server_and_reprobe_on_demand(
    world: World, llama_server: LlamaServer
) -> None:
    created = await world.create(
        probe=True,
        base_url=llama_server.base_url,
        model=llama_server.model,
        options={"json_mode": "json_object"},
    )
    probe = created["probe"]
    assert probe["reachable"] and probe["streaming"] and probe["tools"]
    assert probe["models"] == [llama_server.model] and probe["model_listed"]
    assert created["probed_at"] is not None
    first_probe = created["probed_at"]

    answer = await world.client.post(
        f"/api/v1/providers/{created['id']}/probe", headers=world.admin
    )
    assert answer.status_code == 200 and answer.json()["probed_at"] > first_probe
    # The live provider built from the stored config streams from the server.
    live = world.appliance.services.providers.provider(created["id"])
    text, _, _ = await live.complete(ChatRequest((ChatMessage("user", "Hi"),), max_tokens=4))
    assert text
    await live.aclose()


async def test_probe_of_a_dead_endpoint_is_stored_as_unreachable(world: World) -> None:
    created = await world.create(
        probe=True,
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        options={"max_retries": 0, "connect_timeout": 1},
    )
    assert created["probe"]["reachable"] is False
    assert created["probe"]["error"] == "provider_unavailable"


async def test_probe_of_an_unknown_endpoint_is_404(world: World) -> None:
    answer = await world.client.post(f"/api/v1/providers/{'0' * 32}/probe", headers=world.admin)
    assert answer.status_code == 404


async def test_keys_survive_a_rekey(world: World) -> None:
    created = await world.create()
    world.appliance.rekey(PASSPHRASE)
    _, config = world.appliance.services.providers.engine_config(created["id"])
    assert config.api_key == SECRET


async def test_a_foreign_data_key_cannot_read_the_key(world: World) -> None:
    created = await world.create()
    other = ProviderService(world.appliance.services.db, DataKey.generate())
    with pytest.raises(ProviderSecretUnreadable):
        other.engine_config(created["id"])
