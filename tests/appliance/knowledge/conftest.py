"""Knowledge fixtures: a real appliance (SQLCipher, blobs, Chroma), users, and a runtime whose
worker the test drives step by step (or the API's own background worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from appliance import Appliance
from appliance.identity.models import Role, User
from appliance.knowledge import KnowledgeRuntime, close_runtime
from appliance.knowledge.runtime import build_runtime
from appliance.web import create_app
from engine.knowledge import load_embedder


@pytest.fixture(scope="session", autouse=True)
def _embedder_loaded_once() -> None:
    """Load MiniLM once per session (load_embedder caches it for the process)."""
    load_embedder("minilm-l6-v2-int8")


@dataclass
class People:
    admin: User
    alice: User  # builder, owns the bases in the tests
    bob: User  # member, no access until granted
    auditor: User


@pytest.fixture
def people(appliance: Appliance) -> People:
    users = appliance.services.users
    return People(
        admin=users.create_user("root-admin", "admin password for tests", Role.ADMIN),
        alice=users.create_user("alice", "builder password for tests", Role.BUILDER),
        bob=users.create_user("bob", "member password for tests", Role.MEMBER),
        auditor=users.create_user("audrey", "auditor password for tests", Role.AUDITOR),
    )


@pytest.fixture
def runtime(appliance: Appliance) -> Iterator[KnowledgeRuntime]:
    """A runtime without its thread: tests call ``runtime.worker.run_until_idle()``."""
    rt = build_runtime(appliance, start_worker=False)
    yield rt
    rt.close()


@dataclass
class Api:
    client: httpx.AsyncClient
    appliance: Appliance
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def api(appliance: Appliance, people: People) -> AsyncIterator[Api]:
    """The real app over ASGI; uploads are ingested by the runtime's background worker."""
    tokens = {
        name: appliance.services.tokens.login(getattr(people, name)).access_token
        for name in ("admin", "alice", "bob", "auditor")
    }
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield Api(client, appliance, tokens)
    close_runtime(appliance)
