"""/api/v1/mcp-servers (administrators) and /api/v1/tools (what agents may enable).

Registering and refreshing MCP servers is an administrator's job: a stdio server's command runs
(inside the sandbox) when it is refreshed or used. Builders list the available tools — built-in
and MCP — to enable them on their agents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool as call
from pydantic import BaseModel, Field

from appliance.identity.models import Role
from appliance.licensing.features import MCP
from appliance.runs import RunService
from appliance.web.auth import Admin, Principal, ServicesDep, authorize
from appliance.web.entitlements import entitled
from appliance.web.routes_runs import RunsDep
from engine.tools.knowledge_search import KnowledgeSearchTool

# Without the `mcp` entitlement (a downgrade) servers stay listed but cannot be changed.
servers = APIRouter(
    prefix="/api/v1/mcp-servers", tags=["mcp"], dependencies=[Depends(entitled(MCP))]
)
tools = APIRouter(prefix="/api/v1/tools", tags=["tools"])
Builder = Annotated[Principal, Depends(authorize((Role.ADMIN, Role.BUILDER), "agents:read"))]


class ServerBody(BaseModel):
    name: str = Field(max_length=24)
    transport: Literal["stdio", "http"]
    command: list[str] | None = None
    url: str | None = Field(None, max_length=500)
    timeout_s: float = 30.0


class EnableBody(BaseModel):
    enabled: bool


@servers.get("")
async def list_servers(_: Admin, runs: RunsDep) -> list[dict[str, Any]]:
    """Every registered server with the tools of its last refresh."""
    return [s.as_dict() for s in await call(runs.mcp.list_servers)]


@servers.post("", status_code=201)
async def register_server(
    body: ServerBody, principal: Admin, runs: RunsDep, services: ServicesDep
) -> dict[str, Any]:
    """Register a server (it is not started until refreshed)."""
    info = await call(
        services.audited,
        lambda: runs.mcp.create(body.name, body.transport, body.command, body.url, body.timeout_s),
        action="mcp_server.create",
        actor=principal.actor,
        target=lambda made: f"mcp_server:{made.id}",
        details={"name": body.name, "transport": body.transport},
    )
    return info.as_dict()


@servers.get("/{server_id}")
async def get_server(server_id: str, _: Admin, runs: RunsDep) -> dict[str, Any]:
    return (await call(runs.mcp.get, server_id)).as_dict()


@servers.patch("/{server_id}")
async def enable_server(
    server_id: str, body: EnableBody, principal: Admin, runs: RunsDep, services: ServicesDep
) -> dict[str, Any]:
    """Enable or disable a server's tools for every agent."""
    info = await call(
        services.audited,
        lambda: runs.mcp.set_enabled(server_id, body.enabled),
        action="mcp_server.update",
        actor=principal.actor,
        target=f"mcp_server:{server_id}",
        details={"enabled": body.enabled},
    )
    return info.as_dict()


@servers.post("/{server_id}/refresh")
async def refresh_server(
    server_id: str, principal: Admin, runs: RunsDep, services: ServicesDep
) -> dict[str, Any]:
    """Connect (starting a stdio server in the sandbox), list its tools and store them."""
    info = await runs.mcp.refresh(server_id)
    await call(
        services.audit.record,
        action="mcp_server.refresh",
        actor=principal.actor,
        target=f"mcp_server:{server_id}",
        details={"tools": len(info.tools)},
    )
    return info.as_dict()


@servers.delete("/{server_id}", status_code=204)
async def delete_server(
    server_id: str, principal: Admin, runs: RunsDep, services: ServicesDep
) -> Response:
    await call(
        services.audited,
        lambda: runs.mcp.forget(server_id),
        action="mcp_server.delete",
        actor=principal.actor,
        target=f"mcp_server:{server_id}",
    )
    await runs.mcp.disconnect(server_id)
    return Response(status_code=204)


@tools.get("")
async def list_tools(_: Builder, runs: RunsDep) -> list[dict[str, Any]]:
    """Tools agents may enable: the built-in ones and those of enabled MCP servers."""
    return await call(_available, runs)


def _available(runs: RunService) -> list[dict[str, Any]]:
    # knowledge_search is bound to each user at run time; it is offered to every agent.
    specs = [*runs.runner.tools.specs(), KnowledgeSearchTool.spec]
    out = [
        {
            "name": s.name,
            "description": s.description,
            "parameters": s.parameters,
            "source": "builtin",
            "runs_code": s.runs_code,
        }
        for s in specs
    ]
    out += [
        {
            "name": t.spec.name,
            "description": t.spec.description,
            "parameters": t.spec.parameters,
            "source": "mcp",
            "runs_code": True,
        }
        for t in runs.mcp.tools()
    ]
    return out
