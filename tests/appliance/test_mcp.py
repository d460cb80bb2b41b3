"""MCP: a real MCP server over stdio, started inside the sandbox, listed and called; the admin
API that registers servers; failures with clear errors."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from appliance import Appliance, Role
from appliance.home import Home
from appliance.runs.tools import mcp_launcher
from appliance.web import create_app
from engine.agents import parse_definition
from engine.errors import McpServerFailed
from engine.providers.scripted import ScriptedProvider
from engine.run import Runner, RunSpec
from engine.tools.base import ToolContext, ToolRegistry
from engine.tools.mcp import McpClient, McpServerSpec, load_tools
from tests.conftest import PASSPHRASE, make_settings

# A real MCP server (the official SDK) that adds numbers and reports what it can see.
SERVER = """
import os
from pathlib import Path
from mcp.server.mcpserver import MCPServer

server = MCPServer("demo")

@server.tool()
def add(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    return a + b

@server.tool()
def probe(path: str) -> str:
    \"\"\"Report the uid and whether a path can be read.\"\"\"
    try:
        Path(path).read_bytes()
        readable = "readable"
    except OSError as exc:
        readable = type(exc).__name__
    return f"uid={os.getuid()} {readable} env={sorted(k for k in os.environ if k.startswith('ENCLAVE'))}"

server.run("stdio")
"""
COMMAND = [sys.executable, "-c", SERVER]


@pytest_asyncio.fixture
async def demo(home_dir: Path) -> AsyncIterator[McpClient]:
    Home(home_dir).ensure()
    (home_dir / "vault.json").write_text('{"secret": "canary-7f3a"}')
    launcher = mcp_launcher(make_settings(home_dir), Home(home_dir))
    assert launcher is not None, "a sandbox backend must work on this machine"
    client = McpClient(McpServerSpec("demo", "stdio", tuple(COMMAND), timeout_s=60), launcher)
    yield client
    await client.close()


async def test_a_stdio_server_runs_in_the_sandbox_and_its_tools_are_called(
    demo: McpClient, home_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = await load_tools(demo)
    assert [t.spec.name for t in tools] == ["demo__add", "demo__probe"]
    add = tools[0]
    assert add.spec.parameters["required"] == ["a", "b"]
    out = await add.run({"a": 2, "b": 40}, ToolContext(run_id="r"))
    assert out.content == "42" and not out.is_error
    assert out.audit == {"mcp_server": "demo", "transport": "stdio"}
    # Confined: not root, the appliance's home is invisible, no ENCLAVE_* variables.
    seen = await tools[1].run({"path": str(home_dir / "vault.json")}, ToolContext(run_id="r"))
    assert "uid=0 " not in seen.content
    assert "readable" not in seen.content.split()[1]
    assert "env=[]" in seen.content
    shadow = await tools[1].run({"path": "/etc/shadow"}, ToolContext(run_id="r"))
    assert "readable" not in shadow.content.split()[1]


async def test_an_agent_calls_an_mcp_tool_through_the_run_loop(demo: McpClient) -> None:
    registry = ToolRegistry(await load_tools(demo))
    provider = ScriptedProvider(
        [
            json.dumps({"tool": "demo__add", "arguments": {"a": 20, "b": 22}}),
            json.dumps({"tool": "respond"}),
            "The sum is 42.",
        ]
    )
    definition = parse_definition(
        {"name": "mcp", "model": {"model": "s"}, "tools": [{"name": "demo__add"}]}
    )
    run = Runner(registry).start(RunSpec("r", "u", None, definition, provider, "add 20 and 22"))
    events = [e async for e in run.events.follow()]
    result = next(e for e in events if e.kind == "tool_result")
    assert result.data["name"] == "demo__add" and result.data["content"] == "42"
    assert events[-1].data["finish"] == "stop"


async def test_stdio_servers_never_run_unconfined() -> None:
    with pytest.raises(McpServerFailed, match="only inside the sandbox"):
        McpClient(McpServerSpec("demo", "stdio", tuple(COMMAND)), launcher=None)


async def test_a_server_that_dies_is_a_clear_error(home_dir: Path) -> None:
    Home(home_dir).ensure()
    launcher = mcp_launcher(make_settings(home_dir), Home(home_dir))
    assert launcher is not None
    client = McpClient(McpServerSpec("broken", "stdio", ("/bin/false",), timeout_s=20), launcher)
    with pytest.raises(McpServerFailed, match="broken"):
        await client.tools()
    await client.close()


@dataclass
class Api:
    client: httpx.AsyncClient
    admin: dict[str, str]
    builder: dict[str, str]
    appliance: Appliance


@pytest_asyncio.fixture
async def api(home_dir: Path) -> AsyncIterator[Api]:
    appliance = Appliance(make_settings(home_dir, rate_limit_api_per_minute=100000))
    appliance.initialise(PASSPHRASE)
    services = appliance.services
    admin = services.users.create_user("admin", "mcp api password 123", Role.ADMIN)
    builder = services.users.create_user("builder", "mcp api password 123", Role.BUILDER)
    tokens = [services.tokens.login(u).access_token for u in (admin, builder)]
    headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", timeout=90
    ) as client:
        yield Api(client, headers[0], headers[1], appliance)
    await appliance.runs.close()
    appliance.seal()


async def test_the_admin_api_registers_refreshes_and_lists_tools(api: Api) -> None:
    client, admin, builder, appliance = api.client, api.admin, api.builder, api.appliance
    body = {"name": "demo", "transport": "stdio", "command": COMMAND, "timeout_s": 60}
    created = await client.post("/api/v1/mcp-servers", json=body, headers=admin)
    assert created.status_code == 201, created.text
    server = created.json()
    assert server["tools"] == [] and server["refreshed_at"] is None
    refreshed = await client.post(f"/api/v1/mcp-servers/{server['id']}/refresh", headers=admin)
    assert refreshed.status_code == 200, refreshed.text
    assert [t["name"] for t in refreshed.json()["tools"]] == ["demo__add", "demo__probe"]
    listed = await client.get("/api/v1/tools", headers=builder)
    names = {t["name"]: t["source"] for t in listed.json()}
    assert names["calculator"] == "builtin" and names["demo__add"] == "mcp"
    assert names["python"] == "builtin" and names["knowledge_search"] == "builtin"
    # The same name twice is a conflict; nothing changes.
    again = await client.post("/api/v1/mcp-servers", json=body, headers=admin)
    assert again.status_code == 409
    # Disabled servers' tools disappear from what agents may enable.
    off = await client.patch(
        f"/api/v1/mcp-servers/{server['id']}", json={"enabled": False}, headers=admin
    )
    assert off.status_code == 200 and off.json()["enabled"] is False
    listed = await client.get("/api/v1/tools", headers=builder)
    assert "demo__add" not in {t["name"] for t in listed.json()}
    gone = await client.delete(f"/api/v1/mcp-servers/{server['id']}", headers=admin)
    assert gone.status_code == 204
    assert (
        await client.get(f"/api/v1/mcp-servers/{server['id']}", headers=admin)
    ).status_code == 404
    actions = [e["action"] for e in appliance.services.audit.query(None, None, None, None, 100, 0)]
    assert {
        "mcp_server.create",
        "mcp_server.refresh",
        "mcp_server.update",
        "mcp_server.delete",
    } <= set(actions)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad Name", "transport": "stdio", "command": ["x"]}, "name"),
        ({"name": "ok", "transport": "stdio"}, "command"),
        ({"name": "ok", "transport": "stdio", "command": []}, "command"),
        ({"name": "ok", "transport": "stdio", "command": ["a\x00b"]}, "command"),
        ({"name": "ok", "transport": "http", "url": "ftp://example.org/mcp"}, "url"),
        (
            {"name": "ok", "transport": "http", "url": "https://example.org/mcp", "command": ["x"]},
            "command",
        ),
        ({"name": "ok", "transport": "stdio", "command": ["x"], "timeout_s": 0}, "timeout_s"),
    ],
)
async def test_bad_registrations_are_refused(api: Api, body: dict[str, object], field: str) -> None:
    client, admin, appliance = api.client, api.admin, api.appliance
    response = await client.post("/api/v1/mcp-servers", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert field in response.text
    assert appliance.runs.mcp.list_servers() == []


async def test_refreshing_a_broken_server_says_why_and_keeps_it(api: Api) -> None:
    client, admin = api.client, api.admin
    made = await client.post(
        "/api/v1/mcp-servers",
        json={"name": "broken", "transport": "stdio", "command": ["/bin/false"], "timeout_s": 20},
        headers=admin,
    )
    server_id = made.json()["id"]
    refreshed = await client.post(f"/api/v1/mcp-servers/{server_id}/refresh", headers=admin)
    assert refreshed.status_code == 502 and refreshed.json()["code"] == "mcp_server_unreachable"
    kept = (await client.get(f"/api/v1/mcp-servers/{server_id}", headers=admin)).json()
    assert kept["last_error"] and kept["tools"] == []
