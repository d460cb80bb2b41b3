"""The run API over a real appliance: SSE streaming with the real SmolLM2, resume, cancel,
ACL, refusals as problem+json, and turns persisted only when they succeed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from appliance import Appliance, Role
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.web import create_app
from models import load_catalog
from tests.conftest import PASSPHRASE, make_settings

PW = "runs api password 12345"
MODEL = {"provider": "local", "model": load_catalog().default}


def definition(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "instructions": "You are a helpful assistant. Answer briefly.",
        "model": MODEL,
        "generation": {"temperature": 0.0, "max_output_tokens": 12},
        **extra,
    }


@dataclass
class Site:
    appliance: Appliance
    client: httpx.AsyncClient
    users: dict[str, User]
    agent: str
    calculator_agent: str

    def as_(self, name: str) -> dict[str, str]:
        token = self.appliance.services.tokens.login(self.users[name]).access_token
        return {"Authorization": f"Bearer {token}"}


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        if "event" in fields:
            events.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return events


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    home = tmp_path_factory.mktemp("runs") / "home"
    appliance = Appliance(make_settings(home, rate_limit_api_per_minute=100000, model_threads=2))
    appliance.initialise(PASSPHRASE)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    people = {
        name: users.create_user(name, PW, role)
        for name, role in [
            ("builder", Role.BUILDER),
            ("member", Role.MEMBER),
            ("auditor", Role.AUDITOR),
        ]
    }
    agents = appliance.services.agents
    plain = agents.create(people["builder"], definition("plain")).id
    calc = agents.create(
        people["builder"],
        definition(
            "maths",
            tools=[{"name": "calculator"}],
            generation={"temperature": 0.0, "max_output_tokens": 24},
            limits={"max_steps": 3},
        ),
    ).id
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", timeout=120
    ) as client:
        yield Site(appliance, client, people, plain, calc)
    await appliance.runs.close()
    appliance.seal()


async def run(
    site: Site, agent: str, text: str, who: str = "builder", **extra: Any
) -> httpx.Response:
    return await site.client.post(
        f"/api/v1/agents/{agent}/runs", json={"input": text, **extra}, headers=site.as_(who)
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_a_run_streams_and_the_turn_is_stored(site: Site) -> None:
    response = await run(site, site.agent, "Say hello.")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "token" and kinds[-2:] == ["usage", "done"], kinds
    ids = [e["id"] for e in events]
    # Tokens that arrive together are sent as one event carrying the last one's id.
    assert ids == sorted(set(ids)) and ids[-1] == len(
        site.appliance.runs.get(site.users["builder"], response.headers["x-run-id"]).events.events
    )
    done = events[-1]["data"]
    assert done["finish"] == "stop" and done["run_id"] == response.headers["x-run-id"]
    conversation = done["conversation_id"]
    stored = await site.client.get(
        f"/api/v1/conversations/{conversation}", headers=site.as_("builder")
    )
    assert stored.status_code == 200, stored.text
    messages = stored.json()["messages"]
    answer = "".join(e["data"]["text"] for e in events if e["event"] == "token")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Say hello." and messages[1]["content"] == answer
    assert messages[1]["usage"]["completion_tokens"] == events[-2]["data"]["completion_tokens"]

    # The next turn continues the conversation: its history goes to the model.
    again = await run(site, site.agent, "And again.", conversation_id=conversation)
    assert parse_sse(again.text)[-1]["data"]["conversation_id"] == conversation
    stored = await site.client.get(
        f"/api/v1/conversations/{conversation}", headers=site.as_("builder")
    )
    assert len(stored.json()["messages"]) == 4

    # A dropped connection resumes after the last event id it saw.
    run_id = response.headers["x-run-id"]
    seen = events[1]["id"]
    resumed = parse_sse(
        (
            await site.client.get(
                f"/api/v1/runs/{run_id}/events",
                headers={**site.as_("builder"), "Last-Event-ID": str(seen)},
            )
        ).text
    )
    rest = events[2:]
    assert resumed[0]["id"] > seen and resumed[-1]["id"] == events[-1]["id"]
    assert [e["event"] for e in resumed if e["event"] != "token"] == [
        e["event"] for e in rest if e["event"] != "token"
    ]
    assert "".join(e["data"]["text"] for e in resumed if e["event"] == "token") == "".join(
        e["data"]["text"] for e in rest if e["event"] == "token"
    )
    status = await site.client.get(f"/api/v1/runs/{run_id}", headers=site.as_("builder"))
    assert status.json()["state"] == "done" and status.json()["conversation_id"] == conversation


@pytest.mark.asyncio(loop_scope="module")
async def test_the_calculator_agent_streams_the_tool_result(site: Site) -> None:
    response = await run(site, site.calculator_agent, "what is 1234*5678")
    events = parse_sse(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and events[-1]["data"]["finish"] == "stop", events
    call = next(e for e in events if e["event"] == "tool_call")
    assert call["data"]["name"] == "calculator"
    result = next(e for e in events if e["event"] == "tool_result")
    assert result["data"]["content"] == "7006652"
    assert "token" in kinds[kinds.index("tool_result") :]
    # The tool execution is in the audit log (a digest of the arguments, not the arguments).
    entries = site.appliance.services.audit.query(None, None, None, "tool.execute", 10, 0)
    assert entries and entries[-1]["details"]["tool"] == "calculator"
    assert "1234" not in json.dumps(entries[-1])


@pytest.mark.asyncio(loop_scope="module")
async def test_cancel_stops_the_run_and_stores_nothing(site: Site) -> None:
    runs = site.appliance.runs
    builder = site.users["builder"]
    long_agent = site.appliance.services.agents.create(
        builder, definition("long", generation={"temperature": 0.7, "max_output_tokens": 400})
    ).id
    before = site.appliance.services.conversations.list_conversations(builder)
    started = await runs.start(builder, long_agent, "Write a long story about the sea.")
    follower = started.events.follow()
    first = await anext(follower)
    await follower.aclose()
    assert first.kind in ("token", "queue_position")
    cancelled = await site.client.post(
        f"/api/v1/runs/{started.spec.run_id}/cancel", headers=site.as_("builder")
    )
    assert cancelled.status_code == 202
    await started.wait()
    events = started.events.events
    assert [e.kind for e in events][-2:] == ["error", "done"]
    assert events[-2].data["code"] == "cancelled" and events[-1].data["finish"] == "cancelled"
    assert site.appliance.services.conversations.list_conversations(builder) == before
    # Someone else's run is not found.
    other = await site.client.post(
        f"/api/v1/runs/{started.spec.run_id}/cancel", headers=site.as_("member")
    )
    assert other.status_code == 404


@pytest.mark.asyncio(loop_scope="module")
async def test_who_may_run_what(site: Site) -> None:
    # Not shared with the member: the agent does not exist for them.
    response = await run(site, site.agent, "hi", who="member")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    # Auditors never run agents.
    response = await run(site, site.agent, "hi", who="auditor")
    assert response.status_code == 403
    # Bad input is refused before anything runs.
    response = await run(site, site.agent, "")
    assert response.status_code == 422
    response = await run(site, "0" * 32, "hi")
    assert response.status_code == 404
    response = await run(site, site.agent, "hi", conversation_id="f" * 32)
    assert response.status_code == 404
    anonymous = await site.client.post(f"/api/v1/agents/{site.agent}/runs", json={"input": "hi"})
    assert anonymous.status_code == 401


@pytest.mark.asyncio(loop_scope="module")
async def test_a_model_that_cannot_load_is_refused_with_a_problem(site: Site) -> None:
    broken = site.appliance.services.agents.create(
        site.users["builder"],
        definition("ghost", model={"provider": "local", "model": "no-such-model"}),
    ).id
    response = await run(site, broken, "hi")
    assert response.status_code == 422
    assert response.json()["code"] == "model_unknown"
